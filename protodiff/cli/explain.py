"""``protodiff explain NAME RUN``: every registered explainer, from any plugin, as a subcommand.

The subcommands are read from the ``explainer`` registry when the group is listed or called, so
a plugin's explainer appears here the moment it registers, with the same options as every other:
the run, the real images it explains (``--split``, ``--n``), ``--out``, ``--seed``, ``--device``
and ``--set`` for the explainer's own options (its ``Config``, checked like every config).
"""

from __future__ import annotations

import click

from protodiff.cli.options import device_option, seed_option, set_option


class _Explainers(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        from protodiff.plugins import registries

        return registries().explainer.names()

    def get_command(self, ctx: click.Context, name: str) -> click.Command:
        from protodiff.plugins import registries

        return _command(name, registries().explainer.get(name))  # an unknown name: one line, with suggestions


def _command(name: str, cls: type) -> click.Command:
    summary = (cls.__doc__ or name).strip().splitlines()[0]

    @click.command(name=name, help=summary, short_help=summary)
    @click.argument("run", type=click.Path())
    @click.option("--out", type=click.Path(file_okay=False), default=None,
                  help=f"Output directory (written atomically) [default: explain-{name}].")
    @click.option("--split", default="test", show_default=True, help="The dataset split whose images are explained.")
    @click.option("--n", "count", type=click.IntRange(min=1), default=8, show_default=True,
                  help="Explain the first N images of the split.")
    @seed_option
    @device_option
    @set_option
    def run(run: str, out: str | None, split: str, count: int, seed: int | None, device: str,
            overrides: tuple[str, ...]) -> None:
        import torch

        from protodiff.checkpoint import load_model
        from protodiff.config import ComponentSpec, apply_overrides
        from protodiff.training import resolve_device

        spec = ComponentSpec("explainer", name, raw=apply_overrides({}, list(overrides)))
        explainer = spec.build()
        model, config = load_model(run, device=resolve_device(device))
        model.eval()
        torch.manual_seed(0 if seed is None else seed)
        data = config.data.build().open(split)
        batch = torch.stack([data[i][0] for i in range(min(count, len(data)))]).to(model.device)
        explanation = explainer.explain(model, batch)
        path = explanation.save(out or f"explain-{name}")
        click.echo(f"{name}: explained {len(batch)} images of {split}; wrote {path}")

    return run


@click.group(cls=_Explainers)
def explain() -> None:
    """Explain a trained model: each registered explainer is a subcommand (`protodiff plugins` lists them)."""
