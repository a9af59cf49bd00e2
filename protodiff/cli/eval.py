"""``protodiff eval``: the paper's table columns for a checkpoint, written to one JSON file."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from protodiff.cli.options import device_option, seed_option
from protodiff.config import override_component
from protodiff.errors import ProtodiffError



@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--metrics",
    "metric_names",
    default="tad,attributes-captured,latent-auroc",
    show_default=True,
    help="Comma-separated metric names: tad, attributes-captured, latent-auroc, fid, kid (and plugins').",
)
@click.option(
    "--data",
    "data_overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override the checkpoint's dataset options, e.g. --data root=/datasets/celeba.",
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
@click.option("--sampler", default=None, help="fid/kid sampler (default: the checkpoint's).")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="fid/kid sampling steps.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Batch size for encoding and generating.")
@click.option("--out", type=click.Path(dir_okay=False), default="eval.json", show_default=True, help="Output JSON.")
@click.option("--no-ema", is_flag=True, help="Use the raw weights even if EMA weights were saved.")
@seed_option
@device_option
def eval_command(
    checkpoint: str,
    metric_names: str,
    data_overrides: tuple[str, ...],
    split: str | None,
    sampler: str | None,
    steps: int | None,
    inception_weights: str | None,
    out: str,
    no_ema: bool,
    seed: int | None,
    device: str,
    **metric_options: Any,
) -> None:
    """Evaluate CHECKPOINT (a checkpoint or a run directory) and write the results as JSON.

    Latent metrics follow InfoDiffusion's protocol (5-fold CV, first N train latents); fid/kid
    compare generated images with the split through torch-fidelity. Without Inception weights,
    choose another --extractor: its results are labelled FD_<extractor>, never FID.
    """
    from importlib.metadata import version

    from protodiff.checkpoint import EMA_FILE, load_model, resolve_checkpoint
    from protodiff.config import ComponentSpec, apply_overrides, to_dict
    from protodiff.experiment import experiment_from_dict
    from protodiff.io import write_json
    from protodiff.metrics.extractors import INCEPTION
    from protodiff.metrics.shared import Shared
    from protodiff.registry import registries
    from protodiff.train import resolve_device

    if inception_weights is not None:
        if metric_options["extractor"] not in (None, INCEPTION) or metric_options["extractor_weights"] is not None:
            raise ProtodiffError("--inception-weights selects the Inception extractor; drop --extractor/--extractor-weights")
        metric_options.update(extractor=INCEPTION, extractor_weights=inception_weights)

    path = resolve_checkpoint(checkpoint)
    model, config = load_model(path, device=resolve_device(device), use_ema=not no_ema)
    if data_overrides:
        raw = apply_overrides(to_dict(config), [f"data.{item}" for item in data_overrides])
        config = experiment_from_dict(raw, source="--data")
    seed = config.seed if seed is None else seed
    # Every option of metric_options (and the sampler) sets the Config field of the same name.
    given = {k for k, v in metric_options.items() if v is not None} | ({"sampler"} if sampler or steps else set())
    options = {k: v for k, v in metric_options.items() if v is not None}
    options["sampler"] = override_component(config.sample.sampler, sampler, {"steps": steps} if steps else {})

    names = [n.strip() for n in metric_names.split(",") if n.strip()]
    if not names:
        raise ProtodiffError("--metrics is empty; name at least one metric, e.g. --metrics tad")
    metrics = {}
    for name in names:
        cls = registries().metric.get(name)
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        spec = ComponentSpec("metric", name, raw={k: v for k, v in options.items() if k in fields})
        metrics[name] = spec.resolved(where=name, source="protodiff eval").build()
    _refuse_unused(given, metrics)

    source = config.data.build()
    splits: dict[str, Any] = {}
    for metric in metrics.values():
        chosen = split or metric.default_split
        if chosen not in splits:
            splits[chosen] = source.open(chosen)
            _check_shape(splits[chosen], model)
    for metric in metrics.values():  # fail before any long computation
        metric.check(model, splits[split or metric.default_split])

    shared = Shared()
    results: dict[str, Any] = {}
    for name, metric in metrics.items():
        chosen = split or metric.default_split
        result = metric.compute(model, splits[chosen], shared=shared, seed=seed, progress=True, source=source)
        label = result.get("label", name)
        results[label] = {"metric": name, "split": chosen, **result}
        click.echo(_summary(label, result, chosen))

    write_json(
        out,
        {
            "checkpoint": str(path.resolve()),
            "weights": "ema" if not no_ema and (path / EMA_FILE).is_file() else "raw",
            "dataset": to_dict(config.data),
            "seed": seed,
            "device": str(model.device),
            "protodiff_version": version("protodiff"),
            "results": results,
        },
    )
    click.echo(f"wrote {Path(out)}")


def _refuse_unused(given: set[str], metrics: dict[str, Any]) -> None:
    """A flag that no requested metric reads is a mistake worth a message, not a silent no-op."""
    for key in sorted(given):
        if not any(key in {f.name for f in dataclasses.fields(m.config)} for m in metrics.values()):
            flag = "--" + key.replace("_", "-")
            raise ProtodiffError(f"{flag} does not apply to the requested metrics ({', '.join(metrics)})")


def _check_shape(data: Any, model: Any) -> None:
    if (data.channels, data.image_size) != (model.in_channels, model.image_size):
        raise ProtodiffError(
            f"the dataset gives {data.channels}x{data.image_size}px images, the model takes "
            f"{model.in_channels}x{model.image_size}px; fix --data image_size"
        )


def _summary(label: str, result: dict[str, Any], split: str) -> str:
    """One line per metric; a plugin's metric with other keys is summarised as far as they go."""
    if "value" in result:
        value = f"{result['value']:.4g}"
    elif "mean" in result:
        value = f"{result['mean']:.4g}" + (f" ± {result['std']:.2g}" if "std" in result else "")
    else:
        value = "(see the JSON)"
    if "num_latents" in result:
        where = f"{result['num_latents']} {split} latents, {len(result.get('per_fold', []))} folds"
    elif "num_generated" in result:
        where = f"{result['num_generated']} generated vs {result.get('num_real')} {split}"
    else:
        where = split
    return f"{label} = {value} ({where})"
