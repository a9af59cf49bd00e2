"""One cell: train (or resume, or reuse), evaluate through protodiff.evaluate, draw, explain.

Everything a cell produces lives in ``OUT/cells/METHOD-DATASET/``: the run directory (``run/``),
the figures, the explainers' outputs, and ``cell.json``, written last and atomically, whose
presence means the cell is done (a rerun reuses it; an unfinished run resumes bit for bit).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from protodiff._registry.manager import registries
from protodiff.bench.judge import train_judge
from protodiff.bench.matrix import Cell
from protodiff.bench.measure import peak_cuda_mib, peak_rss_mib, reset_peaks
from protodiff.bench.preflight import CellPlan
from protodiff.bench.settings import cell_settings, settings_hash
from protodiff.bench.spec import BenchSpec
from protodiff.checkpoint import PRIOR_FILE, checkpoint_step, list_checkpoints, load_model
from protodiff.devices import resolve_device
from protodiff.errors import ProtodiffError
from protodiff.evaluation import evaluate
from protodiff.experiment import ExperimentConfig
from protodiff.explain.context import explain as explain_one
from protodiff.figures import image_grid, read_log, regeneration_grid, save_image
from protodiff.io import write_json
from protodiff.metrics.attribute_classifier import AttributeClassifier
from protodiff.model import ConditionedDiffusion
from protodiff.priors import fit_prior
from protodiff.training import LOG_FILE, Trainer

RECORD = "cell.json"
#: Called with (cell name, phase, step, total steps) as a cell progresses.
Observer = Callable[[str, str, int, int], None]


def cell_dir(out: Path, cell: Cell) -> Path:
    return out / "cells" / cell.name


def done(out: Path, cell: Cell) -> bool:
    return (cell_dir(out, cell) / RECORD).is_file()


class _ObservedTrainer(Trainer):
    """The trainer, reporting each step to the display (the loop itself is untouched)."""

    def __init__(self, *args: Any, observe: Callable[[int, int], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observe = observe

    def train_step(self, x0: torch.Tensor) -> dict[str, float]:
        record = super().train_step(x0)
        self.observe(self.step, self.total_steps)
        return record


def _images_per_second(run_dir: Path) -> float | None:
    """Mean training throughput over the log's windows (the trainer measures each)."""
    rates = [r["images_per_sec"] for r in read_log(run_dir / LOG_FILE) if "images_per_sec" in r]
    return sum(rates) / len(rates) if rates else None


def train_cell(cell: Cell, experiment: ExperimentConfig, run_dir: Path, device: str, observe: Observer) -> tuple[Path, int]:
    """Train to the end, resuming a run that has checkpoints; returns (checkpoint, steps trained now)."""
    trainer = _ObservedTrainer(
        experiment,
        run_dir,
        device=device,
        resume=bool(list_checkpoints(run_dir)),
        progress=False,
        observe=lambda step, total: observe(cell.name, "train", step, total),
    )
    start = trainer.step
    observe(cell.name, "train", start, trainer.total_steps)
    return trainer.fit(), trainer.step - start


def draw(model: ConditionedDiffusion, experiment: ExperimentConfig, count: int, seed: int, directory: Path) -> dict[str, str]:
    """Test images regenerated from their condition (two noises) and by inversion, and new samples
    from the latent prior when the method has one; returns file names by figure."""
    sampler = experiment.sample.sampler.build(schedule=model.schedule)
    test = experiment.data.build().open("test")
    real = torch.stack([test[i][0] for i in range(min(count, len(test)))])
    files = {"reconstructions": "reconstructions.png"}
    title = "test images regenerated from their condition alone (two noises) and from their inversion"
    grid = regeneration_grid(model, real, sampler=sampler, seed=seed, noises=2, invert=True, per_row=4, title=title)
    save_image(grid, directory / files["reconstructions"])
    if model.prior is not None:
        samples = model.sample(2 * count, sampler=sampler, generator=torch.Generator().manual_seed(seed)).cpu()
        files["samples"] = "samples.png"
        save_image(
            image_grid([("", samples)], per_row=count, title="new images: a condition drawn from the latent prior"),
            directory / files["samples"],
        )
    return files


def explain(
    model: ConditionedDiffusion,
    experiment: ExperimentConfig,
    explainers: dict[str, dict[str, Any]],
    spec: BenchSpec,
    seed: int,
    directory: Path,
    judge: Path | None,
    observe: Callable[[str], None],
) -> dict[str, Any]:
    """Every chosen explainer on the first test images (as many as the preset says, or as its
    statistic needs when that is more), each one :func:`protodiff.explain` call, as ``protodiff
    explain`` makes it (the judge as its classifier); one a method does not support is skipped
    with its one-line reason (explainers refuse models they cannot explain with a ProtodiffError)."""
    classifier = None
    if judge is not None:
        classifier = AttributeClassifier.load(judge, device=model.device)
    outcome: dict[str, Any] = {}
    for name, options in explainers.items():
        observe(name)
        started = time.perf_counter()
        count = max(spec.explain_images, registries().explainer.get(name).min_images)
        try:
            explanation = explain_one(
                model, name, images=count, split="test", options=options, classifier=classifier, seed=seed, experiment=experiment
            )
        except ProtodiffError as exc:
            outcome[name] = {"skipped": str(exc)}
            continue
        path = explanation.save(directory / "explain" / name)
        figures = sorted(p.name for p in path.glob("*.png"))
        outcome[name] = {
            "dir": str(path.relative_to(directory)),
            "figures": figures,
            "meta": explanation.meta,
            "images": explanation.images,
            "wall_s": round(time.perf_counter() - started, 2),
        }
    return outcome


def judged(options: dict[str, dict[str, Any]], metrics: list[str], judge: Path) -> dict[str, dict[str, Any]]:
    """The metrics' options, with the bench's judge as the classifier of every metric that takes
    one and was not given its own."""
    out = {name: dict(values) for name, values in options.items()}
    for name in metrics:
        config = getattr(registries().metric.get(name), "Config", None)
        fields = getattr(config, "__dataclass_fields__", {})
        if "classifier" in fields and "classifier" not in out.get(name, {}):
            out.setdefault(name, {})["classifier"] = str(judge)
    return out


def _fit_prior(checkpoint: str | Path, seed: int, device: str) -> dict[str, Any]:
    """Fit the checkpoint's latent prior unless an earlier run of the cell did; returns what was
    fitted, or why nothing was (a conditioner that declares no prior)."""
    if (Path(checkpoint) / PRIOR_FILE).is_file():
        return {"reused": True}
    began = time.perf_counter()
    try:
        fitted = fit_prior(checkpoint, seed=seed, device=device)
    except ProtodiffError as exc:
        return {"skipped": str(exc)}
    return {
        "name": fitted.name,
        "vectors": fitted.vectors,
        "final_loss": round(fitted.final_loss, 4),
        "fit_s": round(time.perf_counter() - began, 2),
    }


def run_cell(
    cell: Cell, plan: CellPlan, spec: BenchSpec, out: Path, *, device: str, seed: int, observe: Observer, threads: int
) -> dict[str, Any] | None:
    """Train, evaluate, draw and explain one cell as ``plan`` says, on ``threads`` CPU threads;
    returns its record (None on non-zero DDP ranks)."""
    directory = cell_dir(out, cell)
    run_dir = directory / "run"
    experiment = plan.experiment
    reset_peaks()
    started = time.perf_counter()
    checkpoint, trained_now = train_cell(cell, experiment, run_dir, device, observe)
    train_s = time.perf_counter() - started
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    judge, judge_record = None, None
    if plan.judge:
        observe(cell.name, "judge", 0, 0)
        judge, judge_record = train_judge(out, cell.dataset, experiment, spec.judge, spec.judge_split, seed, device)
    observe(cell.name, "evaluate", 0, 0)
    began = time.perf_counter()
    results, used = {}, str(resolve_device(device))
    if plan.metrics:
        options = judged(spec.metric_options, plan.metrics, judge) if judge is not None else spec.metric_options
        evaluated = evaluate(
            checkpoint, plan.metrics, seed=seed, device=device, options={k: v for k, v in options.items() if k in plan.metrics}
        )
        results, used = evaluated.results, evaluated.device
    eval_s = time.perf_counter() - began
    prior = None
    if spec.prior:
        observe(cell.name, "prior", 0, 0)
        prior = _fit_prior(checkpoint, seed, used)
    model, _ = load_model(checkpoint, device=used)
    observe(cell.name, "draw", 0, 0)
    figures = draw(model, experiment, spec.grid_images, seed, directory)
    explained = explain(
        model,
        experiment,
        plan.explainers,
        spec,
        seed,
        directory,
        judge,
        observe=lambda name: observe(cell.name, f"explain {name}", 0, 0),
    )
    record = {
        "cell": cell.name, "method": cell.method, "dataset": cell.dataset, "preset": cell.preset,
        "overrides": list(cell.overrides), "seed": seed, "checkpoint": str(Path(checkpoint).relative_to(directory)),
        "steps": checkpoint_step(Path(checkpoint)), "trained_now": trained_now,
        "train_s": round(train_s, 2), "eval_s": round(eval_s, 2), "wall_s": round(time.perf_counter() - started, 2),
        "images_per_s": _images_per_second(run_dir), "peak_rss_mib": round(peak_rss_mib(), 1),
        "peak_cuda_mib": peak_cuda_mib(), "device": used, "threads": threads, "machine": platform.node(),
        "judge": {"dir": os.path.relpath(judge, directory), **judge_record} if judge is not None else None,
        "prior": prior, "results": results, "figures": figures, "explainers": explained,
        "left_out": plan.left_out, "settings_hash": settings_hash(cell_settings(experiment, spec, seed)),
    }  # fmt: skip
    write_json(directory / RECORD, record)
    return record
