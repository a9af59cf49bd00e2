"""Everything that can fail before training is checked before the first cell trains.

Every cell's experiment is resolved (preset, overrides, component options), every metric and
explainer option is parsed, and every dataset split is opened and its first image read, so a typo
or a missing data root fails in seconds with one line rather than after an hour of training.
"""

from __future__ import annotations

from pathlib import Path

from protodiff.bench.matrix import Cell
from protodiff.bench.spec import BenchSpec
from protodiff.config import ComponentSpec
from protodiff.errors import DataError, ProtodiffError
from protodiff.experiment import ExperimentConfig, load_experiment
from protodiff.plugins import registries


def resolve(cell: Cell, seed: int, data_root: str | None) -> ExperimentConfig:
    """The cell's experiment, as it will be trained; each dataset lives in ``DATA_ROOT/<dataset>``."""
    root = (f"data.root={Path(data_root) / cell.dataset}",) if data_root else ()
    try:
        return load_experiment(cell.preset, [*cell.overrides, *root, f"seed={seed}"])
    except ProtodiffError as exc:
        raise type(exc)(f"cell {cell.name}: {exc}") from None


def check_data(cell: Cell, experiment: ExperimentConfig) -> None:
    """Open each split the bench uses and read its first image (what `protodiff data check` does for all)."""
    source = experiment.data.build()
    for split in ("train", "test"):
        try:
            data = source.open(split)
            if len(data) == 0:
                raise DataError(f"{split} split is empty")
            data[0]
        except ProtodiffError as exc:
            raise DataError(f"cell {cell.name}: {exc}") from None
        except (OSError, ValueError) as exc:
            raise DataError(f"cell {cell.name}: {cell.dataset} {split}: {exc}; check --data-root "
                            f"(`protodiff data check {cell.dataset} --data-root DIR` validates a copy)") from None


def explainer_names(spec: BenchSpec) -> dict[str, dict]:
    """The explainers to run, with options; ``all`` expands to every registered explainer."""
    registered = registries().explainer.names()
    chosen = {name: {} for name in registered} if "all" in spec.explainers else {}
    chosen.update({k: v for k, v in spec.explainers.items() if k != "all"})
    return chosen


def preflight(spec: BenchSpec, cells: list[Cell], seed: int, data_root: str | None) -> dict[str, ExperimentConfig]:
    """Each cell's resolved experiment; raises a one-line ProtodiffError on the first problem."""
    if spec.needs_data_root and not data_root:
        raise DataError("this bench trains on datasets that are not bundled; pass --data-root DIR "
                        "(DIR/<dataset> for each, see `protodiff data check NAME --data-root DIR`)")
    for name in spec.metrics:
        registries().metric.get(name)
    for name, options in spec.metric_options.items():
        if name not in spec.metrics:
            raise ProtodiffError(f"metric_options: {name} is not among the metrics ({', '.join(spec.metrics)})")
        ComponentSpec("metric", name, raw=dict(options)).resolved(where=name, source="bench preset").build()
    for name, options in explainer_names(spec).items():
        ComponentSpec("explainer", name, raw=dict(options)).resolved(where=name, source="bench preset").build()
    experiments = {cell.name: resolve(cell, seed, data_root) for cell in cells}
    checked: set[str] = set()
    for cell in cells:
        key = repr(experiments[cell.name].data)
        if key not in checked:
            check_data(cell, experiments[cell.name])
            checked.add(key)
    return experiments
