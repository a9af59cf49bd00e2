"""``protodiff explain NAME RUN``: every registered explainer, from any plugin, as a subcommand.

The subcommands are read from the ``explainer`` registry when the group is listed or called, so
a plugin's explainer appears here the moment it registers, with the same options as every other:
the run, the real images it explains (``--split``, ``--n``), ``--out``, ``--seed``, ``--device``,
``--set`` for the explainer's own options (its ``Config``, checked like every config) and
``--classifier`` for those that judge attributes. Its ``Config`` fields declared with
:func:`~protodiff.contracts.explainer.flag` become options of their own; the inputs its ``explain``
declares (:data:`~protodiff.contracts.explainer.INPUTS`) are handed to it by name. The command
parses its line into one :func:`protodiff.explain` call and saves what it returns.
"""

from __future__ import annotations

import dataclasses
import warnings

import click

from protodiff.cli.options import device_option, seed_option, set_option
from protodiff.errors import ProtodiffError

_COMMON = {"out", "split", "n", "count", "seed", "device", "set", "overrides", "classifier", "run"}


class _Explainers(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from protodiff._registry.manager import registries

        return registries().explainer.names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command:
        from protodiff._registry.manager import registries

        return _command(name, registries().explainer.get(name))  # an unknown name: one line, with suggestions


def _flags(cls: type) -> dict[str, str]:
    """The explainer's ``Config`` fields declared with ``flag``: field name -> option help."""
    config = getattr(cls, "Config", None)
    fields = dataclasses.fields(config) if config is not None and dataclasses.is_dataclass(config) else ()
    flags = {f.name: f.metadata["flag"] for f in fields if "flag" in f.metadata}
    clash = sorted(set(flags) & _COMMON)
    if clash:
        raise ProtodiffError(f"explainer {cls.__name__}: its flag {clash[0]!r} clashes with a common option; rename the field")
    return flags


def _command(name: str, cls: type) -> click.Command:
    summary = (cls.__doc__ or name).strip().splitlines()[0]
    flags = _flags(cls)
    inputs = cls.inputs()

    def run(
        run: str,
        out: str | None,
        split: str,
        count: int,
        seed: int | None,
        device: str,
        overrides: tuple[str, ...],
        classifier: str | None = None,
        **flag_values: tuple[str, ...],
    ) -> None:
        from protodiff.config import apply_overrides
        from protodiff.explain.context import explain

        options = apply_overrides({}, list(overrides))
        options.update({key: [*options.get(key, []), *values] for key, values in flag_values.items() if values})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            explanation = explain(
                run,
                name,
                images=count,
                split=split,
                options=options,
                classifier=classifier,
                seed=0 if seed is None else seed,
                device=device,
            )
        for warning in caught:
            click.echo(f"protodiff: warning: {warning.message}", err=True)
        path = explanation.save(out or f"explain-{name}")
        click.echo(f"{name}: explained {explanation.images} images of {split}; wrote {path}")

    params = [
        click.Argument(["run"], type=click.Path()),
        click.Option(
            ["--out"],
            type=click.Path(file_okay=False),
            default=None,
            help=f"Output directory (written atomically) [default: explain-{name}].",
        ),
        click.Option(["--split"], default="test", show_default=True, help="The dataset split whose images are explained."),
        click.Option(
            ["--n", "count"],
            type=click.IntRange(min=1),
            default=cls.default_images,
            show_default=True,
            help="Explain the first N images of the split.",
        ),
        *(
            [
                click.Option(
                    ["--classifier"],
                    type=click.Path(file_okay=False),
                    default=None,
                    help="The attribute classifier that judges the images (`protodiff classifier train`).",
                )
            ]
            if "classifier" in inputs
            else []
        ),
        *(click.Option([f"--{key.replace('_', '-')}", key], multiple=True, help=text) for key, text in flags.items()),
    ]
    command = click.Command(name, callback=run, params=params, help=summary, short_help=summary)
    for decorate in (seed_option, device_option, set_option):
        command = decorate(command)
    return command


@click.group(cls=_Explainers)
def explain() -> None:
    """Explain a trained model: each registered explainer is a subcommand (`protodiff plugins` lists them)."""
