"""Evaluation: registered metrics of a trained model on a dataset split, as one call.

::

    results = protodiff.evaluate("runs/ps", metrics=["tad", "fid"], seed=0,
                                 options={"fid": {"extractor": "identity", "num_samples": 1000}})
    results["TAD"]["mean"]
    results.save("eval.json")

``protodiff eval`` parses its command line into exactly this call. ``options`` sets components'
options by key path, as ``--set`` does: ``{"tad": {"auroc_threshold": 0.9}}`` is
``--set tad.auroc_threshold=0.9``. Besides the requested metrics, two run-level components may be
set there: ``data`` (the run's dataset, e.g. ``{"data": {"root": "/data/celeba"}}``) and
``sampler`` (the run's sampler, which metrics that generate use unless their own options name
one). Every key is checked by the config parser: an unknown one is a one-line error naming its
key path and the closest valid keys.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from protodiff._registry.manager import registries
from protodiff._version import __version__
from protodiff.checkpoint import model_and_experiment
from protodiff.config import ComponentSpec, override_component, to_dict
from protodiff.contracts.dataset import DatasetSource, LabeledImages
from protodiff.contracts.metric import EvalCache, EvalContext, Metric
from protodiff.errors import ConfigError, ProtodiffError
from protodiff.experiment import ExperimentConfig, experiment_from_dict
from protodiff.io import write_json
from protodiff.model import ConditionedDiffusion
from protodiff.provenance import code_version

#: What ``protodiff eval`` computes when no metrics are named: the latent columns of Patronus' tables.
DEFAULT_METRICS = ("tad", "attributes-captured", "latent-auroc")
#: Keys of ``options`` that set run-level components rather than a metric's options.
RUN_OPTIONS = ("data", "sampler")
#: How option errors name their origin (``options: tad.bogus: unknown key ...``).
SOURCE = "options"


@dataclass
class Results:
    """What :func:`evaluate` returns: every metric's result under its label, and what was evaluated.

    ``results["TAD"]`` (by label) or ``results["tad"]`` (by metric name) is one metric's JSON-ready
    dict: its ``metric`` and ``split``, the value(s), the protocol and the counts. ``save`` writes
    the whole record, atomically, as ``protodiff eval`` does.
    """

    #: The evaluated checkpoint directory (None for a model passed in memory).
    checkpoint: str | None
    #: ``ema`` or ``raw`` weights of the checkpoint, or ``in memory``.
    weights: str
    #: The resolved dataset the splits were opened from.
    dataset: dict[str, Any]
    seed: int
    device: str
    protodiff_version: str
    #: Label -> result, in the order the metrics were requested.
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The code that computed them: protodiff's commit (from a checkout), torch, Python.
    code: dict[str, str] = field(default_factory=code_version)

    def __getitem__(self, key: str) -> dict[str, Any]:
        if key in self.results:
            return self.results[key]
        for result in self.results.values():
            if result["metric"] == key:
                return result
        raise KeyError(f"no result labelled or named {key!r}; have {', '.join(self.results)}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the results as JSON (complete or absent)."""
        return write_json(path, self.to_dict())

    def summary(self) -> list[str]:
        """One line per metric: label, value and what it was computed on."""
        return [_summary_line(label, result) for label, result in self.results.items()]


def evaluate(
    run_or_model: str | os.PathLike | ConditionedDiffusion,
    metrics: Sequence[str] | str = DEFAULT_METRICS,
    *,
    split: str | None = None,
    seed: int | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    experiment: ExperimentConfig | None = None,
    device: str | torch.device = "auto",
    use_ema: bool = True,
    progress: bool = False,
) -> Results:
    """Compute ``metrics`` (registry names) for a run, a checkpoint, or a model in memory.

    ``split`` overrides every metric's protocol split (``train`` for the latent metrics, ``test``
    for fid/kid); ``seed`` defaults to the experiment's; ``options`` sets metric (and ``data`` /
    ``sampler``) options by key path, see the module docstring. ``experiment`` is the config to
    evaluate under: a checkpoint's own by default; required with a model passed in memory (the
    config :func:`protodiff.load_model` returned with it). ``device`` and ``use_ema`` apply when a
    checkpoint is loaded. Every metric is built and checked before the first is computed, so a
    bad option or an unusable model fails in seconds, not after an hour of sampling.
    """
    names = _metric_names(metrics)
    options = _check_option_keys(options or {}, names)
    model, experiment, checkpoint, weights = model_and_experiment(run_or_model, experiment, device=device, use_ema=use_ema)
    experiment = _with_run_options(experiment, options, names)
    built = {name: _build_metric(name, options.get(name, {})) for name in names}
    source = experiment.data.build()
    splits = _open_splits(source, model, {name: split or metric.default_split for name, metric in built.items()})
    for metric in built.values():
        metric.check(model, splits[split or metric.default_split])

    seed = experiment.seed if seed is None else seed
    cache = EvalCache()
    results: dict[str, dict[str, Any]] = {}
    was_training = model.training
    model.eval()
    try:
        for name, metric in built.items():
            chosen = split or metric.default_split
            context = EvalContext(
                source=source, split=chosen, device=model.device, seed=seed,
                sampler=experiment.sample.sampler, cache=cache, progress=progress,
            )  # fmt: skip
            result = metric.compute(model, splits[chosen], context)
            results[result.get("label", name)] = {"metric": name, "split": chosen, **result}
    finally:
        model.train(was_training)
    return Results(checkpoint, weights, to_dict(experiment.data), seed, str(model.device), __version__, results)


def _metric_names(metrics: Sequence[str] | str) -> list[str]:
    names = list(dict.fromkeys([metrics] if isinstance(metrics, str) else metrics))
    if not names:
        raise ProtodiffError("no metrics requested: name at least one, e.g. metrics=['tad']")
    for name in names:
        registries().metric.get(name)  # an unknown name: one line with the closest registered ones
    return names


def _check_option_keys(options: Mapping[str, Any], names: list[str]) -> dict[str, Mapping[str, Any]]:
    """Every top-level key names a requested metric or a run-level component, and holds a mapping."""
    allowed = [*names, *RUN_OPTIONS]
    for key, value in options.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed)}"
            raise ConfigError(
                f"{SOURCE}: {key}: not a requested metric ({', '.join(names)}) nor {' or '.join(RUN_OPTIONS)}; {hint}"
            )
        if not isinstance(value, Mapping):
            raise ConfigError(f"{SOURCE}: {key}: expected a mapping of {key}'s options, got {value!r}")
    return dict(options)


def _with_run_options(
    experiment: ExperimentConfig, options: Mapping[str, Mapping[str, Any]], names: list[str]
) -> ExperimentConfig:
    """The experiment with ``options["data"]`` applied to its dataset and ``options["sampler"]``
    to its sampler, each re-validated by the config parser."""
    if "sampler" in options and not any(_has_option(name, "sampler") for name in names):
        raise ConfigError(f"{SOURCE}: sampler: none of the requested metrics ({', '.join(names)}) generates images")
    if not any(key in options for key in RUN_OPTIONS):
        return experiment
    raw = to_dict(experiment)
    raw["data"].update(options.get("data", {}))
    if "sampler" in options:
        sampler = dict(options["sampler"])
        raw["sample"]["sampler"] = to_dict(override_component(experiment.sample.sampler, sampler.pop("name", None), sampler))
    return experiment_from_dict(raw, source=SOURCE)


def _has_option(metric: str, option: str) -> bool:
    return option in {f.name for f in fields(registries().metric.get(metric).Config)}


def _build_metric(name: str, options: Mapping[str, Any]) -> Metric:
    return ComponentSpec("metric", name, raw=dict(options)).resolved(where=name, source=SOURCE).build()


def _open_splits(source: DatasetSource, model: ConditionedDiffusion, chosen: Mapping[str, str]) -> dict[str, LabeledImages]:
    """Each split the metrics need, opened once and checked against the model's input shape."""
    splits = {}
    for split in dict.fromkeys(chosen.values()):
        data = splits[split] = source.open(split)
        if (data.channels, data.image_size) != (model.in_channels, model.image_size):
            raise ProtodiffError(
                f"the dataset gives {data.channels}x{data.image_size}px images, the model takes "
                f"{model.in_channels}x{model.image_size}px; set data.image_size={model.image_size}"
            )
    return splits


def _summary_line(label: str, result: dict[str, Any]) -> str:
    """A plugin's metric with other keys is summarised as far as they go."""
    if "value" in result:
        value = f"{result['value']:.4g}"
    elif "mean" in result:
        value = f"{result['mean']:.4g}" + (f" ± {result['std']:.2g}" if "std" in result else "")
    else:
        value = "(see the JSON)"
    split = result["split"]
    if "num_latents" in result:
        where = f"{result['num_latents']} {split} latents, {len(result.get('per_fold', []))} folds"
    elif "num_generated" in result:
        where = f"{result['num_generated']} generated vs {result.get('num_real')} {split}"
    else:
        where = split
    return f"{label} = {value} ({where})"
