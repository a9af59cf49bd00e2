"""Bench presets: which datasets, methods, budgets, metrics and explainers a bench runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protodiff.config import parse, read_yaml
from protodiff.errors import ConfigError
from protodiff.evaluation import DEFAULT_METRICS

PRESETS = Path(__file__).parent / "presets"
#: ``methods: all`` means every registered conditioner with a ``METHOD-DATASET`` preset.
ALL = "all"


@dataclass
class BenchSpec:
    """One bench: the matrix and what is measured in every cell."""

    #: Dataset names; a cell exists for each method with a registered ``METHOD-DATASET`` preset.
    datasets: list[str] = field(default_factory=lambda: ["shapes"])
    #: Conditioner names, or ``[all]``.
    methods: list[str] = field(default_factory=lambda: [ALL])
    #: ``key=value`` overrides applied to every cell's experiment (e.g. a smaller step budget).
    set: list[str] = field(default_factory=list)
    #: Per-method overrides, applied after ``set``.
    method_set: dict[str, list[str]] = field(default_factory=dict)
    #: Metrics computed through protodiff.evaluate, and their options by key path.
    metrics: list[str] = field(default_factory=lambda: list(DEFAULT_METRICS))
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Explainer name -> its options; ``all: {}`` runs every registered explainer with its defaults.
    #: Each explains ``explain_images`` test images, or the images its statistic needs (its
    #: ``default_images``) when that is more.
    explainers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Explainer name -> the one sentence why this bench does not run it (shown in the report).
    left_out: dict[str, str] = field(default_factory=dict)
    #: The per-dataset attribute classifier (its ClassifierConfig options) that judges
    #: regenerations and edits for every method alike, and the split it is trained on.
    judge: dict[str, Any] = field(default_factory=dict)
    judge_split: str = "train"
    #: Fit each cell's latent prior (its preset's, on the train split) and draw new samples from
    #: it; a method whose conditioner declares none is noted as skipped.
    prior: bool = False
    #: Real test images per explainer, per reconstruction grid, and new samples per grid.
    explain_images: int = 4
    grid_images: int = 8
    #: Cells trained side by side on a CPU, each in its own process on ``cores // jobs`` threads
    #: (two one-thread processes train more per second than one two-thread process; see
    #: protodiff.bench.pool); on CUDA cells run one at a time.
    jobs: int = 1
    #: Whether the cells need ``--data-root`` (the datasets are not bundled).
    needs_data_root: bool = False
    #: Why the budgets are what they are (measured), shown in the report.
    notes: str = ""

    def __post_init__(self) -> None:
        if self.jobs < 1 or self.explain_images < 1 or self.grid_images < 1:
            raise ValueError("jobs, explain_images and grid_images must be at least 1")


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS.glob("*.yaml"))


def load_bench(name_or_path: str | Path) -> tuple[str, BenchSpec]:
    """A bench preset by name, or a YAML path; returns (name, spec)."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = PRESETS / f"{name_or_path}.yaml"
        if not path.is_file():
            import difflib

            close = difflib.get_close_matches(str(name_or_path), preset_names(), n=2)
            hint = f"did you mean {' or '.join(close)}?" if close else f"choose one of {', '.join(preset_names())}"
            raise ConfigError(f"{name_or_path}: no such bench preset or YAML file; {hint}")
    return path.stem, parse(BenchSpec, read_yaml(path), source=str(path))
