"""``protodiff eval``: parse the command line into one :func:`protodiff.evaluate` call, write its JSON.

The command names no metric option: ``--set METRIC.KEY=VALUE`` sets any, and the shorthand flags
(``--num-latents``, ``--extractor``, ``--inception-weights``, ...) are the ``Config`` fields the
registered metrics declare with :func:`protodiff.contracts.metric.flag`, read from the registry
when the command is parsed or its help shown.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal, Union

import click

from protodiff._registry.manager import registries
from protodiff.cli.options import device_option, seed_option, set_option
from protodiff.config import apply_overrides
from protodiff.errors import ProtodiffError
from protodiff.evaluation import DEFAULT_METRICS, evaluate


@dataclass(frozen=True)
class MetricFlag:
    """A flag the metrics declare: it sets ``option`` to its value, and ``implies`` with it."""

    option: str
    help: str
    type: Any
    implies: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def metric_flags() -> dict[str, MetricFlag]:
    """Flag name (underscored) -> what it sets, over every registered metric's ``Config`` (the
    first metric to declare a name gives its help)."""
    found: dict[str, MetricFlag] = {}
    for entry in registries().metric.entries():
        if entry.family:  # a family's target is a factory of members, not a metric with a Config
            continue
        config = entry.target.Config
        hints = typing.get_type_hints(config)
        for f in fields(config):
            if "flag" not in f.metadata:
                continue
            kind = _click_type(hints[f.name])
            found.setdefault(f.name, MetricFlag(f.name, f.metadata["flag"], kind))
            for alias, (text, implies) in f.metadata["aliases"].items():
                found.setdefault(alias, MetricFlag(f.name, text, kind, implies))
    return found


def _click_type(hint: Any) -> Any:
    if typing.get_origin(hint) in (Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if typing.get_origin(hint) is Literal:
        return click.Choice([str(a) for a in typing.get_args(hint)])
    return hint if hint in (int, float, str) else str


class _EvalCommand(click.Command):
    """Adds the metrics' flags after ``--split`` the first time its parameters are asked for."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if not getattr(self, "with_metric_flags", False):
            at = next(i for i, p in enumerate(self.params) if p.name == "split") + 1
            self.params[at:at] = [
                click.Option([f"--{name.replace('_', '-')}", name], type=flag.type, default=None, help=flag.help)
                for name, flag in metric_flags().items()
            ]
            self.with_metric_flags = True
        return super().get_params(ctx)


@click.command("eval", cls=_EvalCommand)
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--metrics",
    "metric_names",
    default=",".join(DEFAULT_METRICS),
    show_default=True,
    help="Comma-separated metric names (`protodiff plugins` lists them), e.g. tad,latent-auroc,fid.",
)
@set_option
@click.option(
    "--data",
    "data_overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override the checkpoint's dataset options, e.g. --data root=/datasets/celeba (= --set data.root=...).",
)
@click.option(
    "--split",
    default=None,
    help="Split to evaluate (default: each metric's protocol split, train for latent metrics, test for fid/kid).",
)
@click.option("--sampler", default=None, help="Sampler of the metrics that generate (default: the checkpoint's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampling steps of that sampler.")
@click.option("--out", type=click.Path(dir_okay=False), default="eval.json", show_default=True, help="Output JSON.")
@click.option("--no-ema", is_flag=True, help="Use the raw weights even if EMA weights were saved.")
@seed_option
@device_option
def eval_command(
    checkpoint: str,
    metric_names: str,
    overrides: tuple[str, ...],
    data_overrides: tuple[str, ...],
    split: str | None,
    sampler: str | None,
    steps: int | None,
    out: str,
    no_ema: bool,
    seed: int | None,
    device: str,
    **flag_values: Any,
) -> None:
    """Evaluate CHECKPOINT (a checkpoint or a run directory) and write the results as JSON.

    Any metric option is set with --set METRIC.KEY=VALUE (e.g. --set tad.auroc_threshold=0.9),
    the run's dataset and sampler with --set data.KEY=... and --set sampler.KEY=...; the metrics'
    flags below are shorthands that set their option on every requested metric that has it.
    Latent metrics follow InfoDiffusion's protocol (5-fold CV, first N train latents); fid/kid
    compare generated images with the split through torch-fidelity. Without Inception weights,
    choose another --extractor: its results are labelled FD_<extractor>, never FID.
    """
    names = [n.strip() for n in metric_names.split(",") if n.strip()]
    if not names:
        raise ProtodiffError("--metrics is empty; name at least one metric, e.g. --metrics tad")
    options = _options_for_metrics(names, _flag_options({k: v for k, v in flag_values.items() if v is not None}))
    if data_overrides:
        options["data"] = apply_overrides({}, data_overrides)
    run_sampler = {k: v for k, v in {"name": sampler, "steps": steps}.items() if v is not None}
    if run_sampler:
        options["sampler"] = run_sampler
    results = evaluate(
        checkpoint, names, split=split, seed=seed, options=apply_overrides(options, overrides),
        device=device, use_ema=not no_ema, progress=True,
    )  # fmt: skip
    for line in results.summary():
        click.echo(line)
    results.save(out)
    click.echo(f"wrote {Path(out)}")


def _flag_options(given: dict[str, Any]) -> dict[str, Any]:
    """Option name -> value for the flags given; a flag that implies options (``--inception-weights``)
    may not be given with a flag that sets one of them."""
    declared = metric_flags()
    options: dict[str, Any] = {}
    for name, value in given.items():
        flag = declared[name]
        clash = sorted(other for other in given if other != name and declared[other].option in {flag.option, *flag.implies})
        if flag.implies and clash:
            implied = ", ".join(f"{k}={v}" for k, v in flag.implies.items())
            dropped = "/".join(f"--{other.replace('_', '-')}" for other in clash)
            raise ProtodiffError(f"--{name.replace('_', '-')} sets {flag.option} and {implied}; drop {dropped}")
        options.update({**flag.implies, flag.option: value})
    return options


def _options_for_metrics(names: list[str], given: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each flag's value as the option of the same name of every requested metric that has it;
    a flag that no requested metric reads is a mistake worth a message, not a silent no-op."""
    options: dict[str, dict[str, Any]] = {}
    for key, value in given.items():
        takers = [name for name in names if key in {f.name for f in fields(registries().metric.get(name).Config)}]
        if not takers:
            raise ProtodiffError(f"--{key.replace('_', '-')} does not apply to the requested metrics ({', '.join(names)})")
        for name in takers:
            options.setdefault(name, {})[key] = value
    return options
