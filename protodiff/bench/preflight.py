"""Everything that can fail before training is checked before the first cell trains.

Every cell's experiment is resolved (preset, overrides, component options), every metric and
explainer option is parsed, every dataset split is opened and its first image read, the train
split is checked against the batch size, and every metric is checked against an untrained copy of
the cell's model and the split it reads (attribute labels, a latent, FID's Inception weights), so
a typo, a missing data root or a missing file fails in seconds with one line rather than after
hours of training.

What a dataset cannot support at all (a metric or the judge that needs attribute labels, on FFHQ,
which has none) does not stop the bench: the cell is planned without it, and its record and the
report say what was left out and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from protodiff._registry.manager import registries
from protodiff.bench.matrix import Cell
from protodiff.bench.spec import BenchSpec
from protodiff.config import ComponentSpec
from protodiff.contracts.dataset import LabeledImages
from protodiff.errors import DataError, ProtodiffError, UnsupportedData, UnsupportedModel
from protodiff.experiment import ExperimentConfig, load_experiment


@dataclass
class CellPlan:
    """What one cell will do: its experiment, the metrics and explainers its data supports, whether
    it needs the dataset's judge, and what was left out with the reason."""

    experiment: ExperimentConfig
    metrics: list[str]
    explainers: dict[str, dict[str, Any]]
    judge: bool
    left_out: dict[str, str] = field(default_factory=dict)
    #: Parameters x training steps: the order in which a bench running cells side by side starts
    #: them (largest first, so that the last cell to finish is a small one).
    cost: float = 0.0


def resolve(cell: Cell, seed: int, data_root: str | None) -> ExperimentConfig:
    """The cell's experiment, as it will be trained; each dataset lives in ``DATA_ROOT/<dataset>``."""
    root = (f"data.root={Path(data_root) / cell.dataset}",) if data_root else ()
    try:
        return load_experiment(cell.preset, [*cell.overrides, *root, f"seed={seed}"])
    except ProtodiffError as exc:
        raise type(exc)(f"cell {cell.name}: {exc}") from None


def open_splits(cell: Cell, experiment: ExperimentConfig) -> dict[str, LabeledImages]:
    """Each split the bench uses, opened and its first image read (what `protodiff data check`
    does for all of them), the train split at least one batch long."""
    source = experiment.data.build()
    splits = {}
    for split in ("train", "test"):
        try:
            data = splits[split] = source.open(split)
            if len(data) == 0:
                raise DataError(f"{split} split is empty")
            data[0]
        except ProtodiffError as exc:
            raise DataError(f"cell {cell.name}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise DataError(
                f"cell {cell.name}: {cell.dataset} {split}: {exc}; check --data-root "
                f"(`protodiff data check {cell.dataset} --data-root DIR` validates a copy)"
            ) from None
    batch = experiment.train.batch_size
    if len(splits["train"]) < batch:
        raise DataError(
            f"cell {cell.name}: the train split has {len(splits['train'])} images, fewer than "
            f"train.batch_size={batch}; lower it (--set train.batch_size=N) or use more data"
        )
    return splits


def explainer_names(spec: BenchSpec) -> dict[str, dict]:
    """The explainers to run, with options; ``all`` expands to every registered explainer."""
    registered = registries().explainer.names()
    chosen = {name: {} for name in registered} if "all" in spec.explainers else {}
    chosen.update({k: v for k, v in spec.explainers.items() if k != "all"})
    return chosen


def takes_classifier(kind: str, name: str) -> bool:
    """Whether a metric has a ``classifier`` option, or an explainer a ``classifier`` input."""
    cls = getattr(registries(), kind).get(name)
    if kind == "explainer":
        return "classifier" in cls.inputs()
    return "classifier" in getattr(getattr(cls, "Config", None), "__dataclass_fields__", {})


def plan_cell(cell: Cell, experiment: ExperimentConfig, spec: BenchSpec, splits: dict[str, LabeledImages]) -> CellPlan:
    """Check every metric against an untrained copy of the cell's model and the split it reads;
    leave out what the data (or the method) cannot support, refuse anything else."""
    from protodiff.model import ConditionedDiffusion

    torch.manual_seed(0)
    model = ConditionedDiffusion.from_experiment(experiment).eval()
    left_out: dict[str, str] = {}
    judge_data = splits.get(spec.judge_split)
    if judge_data is not None and not judge_data.attribute_names:
        left_out["judge"] = f"{cell.dataset} has no attribute labels to train the attribute classifier on"
    metrics = []
    for name in spec.metrics:
        metric = ComponentSpec("metric", name, raw=dict(spec.metric_options.get(name, {}))).build()
        try:
            metric.check(model, splits[metric.default_split])
        except (UnsupportedData, UnsupportedModel) as exc:
            left_out[name] = str(exc)
            continue
        except ProtodiffError as exc:
            raise type(exc)(f"cell {cell.name}: {name}: {exc}") from None
        metrics.append(name)
    explainers = {}
    for name, options in explainer_names(spec).items():
        if "judge" in left_out and takes_classifier("explainer", name):
            left_out[name] = "it reads attributes with the judge, and there is none (" + left_out["judge"] + ")"
            continue
        explainers[name] = options
    needs_judge = any(takes_classifier("metric", m) for m in metrics) or any(takes_classifier("explainer", e) for e in explainers)
    steps = experiment.train.steps or experiment.train.epochs * (len(splits["train"]) // experiment.train.batch_size)
    cost = float(sum(p.numel() for p in model.parameters()) * steps)
    return CellPlan(experiment, metrics, explainers, needs_judge and "judge" not in left_out, left_out, cost)


def preflight(spec: BenchSpec, cells: list[Cell], seed: int, data_root: str | None) -> dict[str, CellPlan]:
    """Each cell's plan; raises a one-line ProtodiffError on the first problem."""
    if spec.needs_data_root and not data_root:
        raise DataError(
            "this bench trains on datasets that are not bundled; pass --data-root DIR "
            "(DIR/<dataset> for each, see `protodiff data check NAME --data-root DIR`)"
        )
    for name in spec.metrics:
        registries().metric.get(name)
    for name, options in spec.metric_options.items():
        if name not in spec.metrics:
            raise ProtodiffError(f"metric_options: {name} is not among the metrics ({', '.join(spec.metrics)})")
        ComponentSpec("metric", name, raw=dict(options)).resolved(where=name, source="bench preset").build()
    for name, options in explainer_names(spec).items():
        ComponentSpec("explainer", name, raw=dict(options)).resolved(where=name, source="bench preset").build()
    experiments = {cell.name: resolve(cell, seed, data_root) for cell in cells}
    opened: dict[str, dict[str, LabeledImages]] = {}
    plans = {}
    for cell in cells:
        experiment = experiments[cell.name]
        key = repr(experiment.data)
        if key not in opened:
            opened[key] = open_splits(cell, experiment)
        plans[cell.name] = plan_cell(cell, experiment, spec, opened[key])
    return plans
