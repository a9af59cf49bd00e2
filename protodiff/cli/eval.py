"""``protodiff eval``: parse the command line into one :func:`protodiff.evaluate` call, write its JSON."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from protodiff._registry.manager import registries
from protodiff.cli.options import device_option, seed_option, set_option
from protodiff.config import apply_overrides
from protodiff.errors import ProtodiffError
from protodiff.evaluation import DEFAULT_METRICS, evaluate
from protodiff.metrics.fidelity.feature_extractors import INCEPTION


@click.command("eval")
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
@click.option("--num-latents", type=click.IntRange(min=2), default=None, help="Latent metrics: the first N images [10000].")
@click.option("--num-samples", type=click.IntRange(min=2), default=None, help="fid/kid: generated images [10000].")
@click.option("--num-real", type=click.IntRange(min=2), default=None, help="fid/kid: real images [the whole split].")
@click.option(
    "--conditions",
    type=click.Choice(["data", "prior"]),
    default=None,
    help="fid/kid on a conditional model: conditions of real images (reconstruction) or the latent prior [data].",
)
@click.option(
    "--extractor",
    default=None,
    help="fid/kid feature extractor: inception-v3-compat (FID), identity, attribute-classifier, timm-<model>.",
)
@click.option("--extractor-weights", default=None, help="Local weights of the --extractor (file, or classifier directory).")
@click.option("--inception-weights", default=None, help="Path of torch-fidelity's Inception weights file (real FID offline).")
@click.option("--sampler", default=None, help="Sampler of the metrics that generate (default: the checkpoint's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Sampling steps of that sampler.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size for encoding and generating.")
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
    num_latents: int | None,
    num_samples: int | None,
    num_real: int | None,
    conditions: str | None,
    extractor: str | None,
    extractor_weights: str | None,
    inception_weights: str | None,
    sampler: str | None,
    steps: int | None,
    batch_size: int | None,
    out: str,
    no_ema: bool,
    seed: int | None,
    device: str,
) -> None:
    """Evaluate CHECKPOINT (a checkpoint or a run directory) and write the results as JSON.

    Any metric option is set with --set METRIC.KEY=VALUE (e.g. --set tad.auroc_threshold=0.9),
    the run's dataset and sampler with --set data.KEY=... and --set sampler.KEY=...; the flags
    below are shorthands that set their option on every requested metric that has it. Latent
    metrics follow InfoDiffusion's protocol (5-fold CV, first N train latents); fid/kid compare
    generated images with the split through torch-fidelity. Without Inception weights, choose
    another --extractor: its results are labelled FD_<extractor>, never FID.
    """
    names = [n.strip() for n in metric_names.split(",") if n.strip()]
    if not names:
        raise ProtodiffError("--metrics is empty; name at least one metric, e.g. --metrics tad")
    flags = {
        "num_latents": num_latents, "num_samples": num_samples, "num_real": num_real, "conditions": conditions,
        "extractor": extractor, "extractor_weights": extractor_weights, "batch_size": batch_size,
    }  # fmt: skip
    if inception_weights is not None:
        if extractor not in (None, INCEPTION) or extractor_weights is not None:
            raise ProtodiffError("--inception-weights selects the Inception extractor; drop --extractor/--extractor-weights")
        flags.update(extractor=INCEPTION, extractor_weights=inception_weights)
    options = _options_for_metrics(names, {k: v for k, v in flags.items() if v is not None})
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
