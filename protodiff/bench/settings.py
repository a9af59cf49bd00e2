"""What a bench cell was run with, so that a rerun reuses it only when nothing that shapes its
numbers changed.

A cell's settings are everything its record depends on: the resolved experiment (every default
filled in), the bench's metrics and their options, the explainers and theirs, the image counts,
the judge and the seed. They are written to ``settings.json`` in the cell directory before the
cell trains, and hashed into its record; a rerun compares its own settings with them and names
the keys that differ.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from protodiff.bench.spec import BenchSpec
from protodiff.config import read_yaml, to_dict
from protodiff.errors import ProtodiffError
from protodiff.experiment import ExperimentConfig, experiment_from_dict

SETTINGS_FILE = "settings.json"
#: Set by the trainer from the machine (``auto`` made concrete), so never a difference of settings.
_MACHINE_CHOSEN = ("experiment.train.precision",)


def cell_settings(experiment: ExperimentConfig, spec: BenchSpec, seed: int) -> dict[str, Any]:
    """Everything a cell's record depends on, as plain data."""
    return {
        "experiment": to_dict(experiment),
        "seed": seed,
        "metrics": list(spec.metrics),
        "metric_options": spec.metric_options,
        "explainers": spec.explainers,
        "explain_images": spec.explain_images,
        "grid_images": spec.grid_images,
        "prior": spec.prior,
        "judge": spec.judge,
        "judge_split": spec.judge_split,
    }


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out if out or not prefix else {prefix: {}}
    return {prefix: data}


def differences(old: dict[str, Any], new: dict[str, Any], limit: int = 4) -> list[str]:
    """``key old -> new`` for each differing key path (at most ``limit``, then how many more)."""
    a, b = _flat(old), _flat(new)
    keys = [k for k in dict.fromkeys([*a, *b]) if a.get(k, "<unset>") != b.get(k, "<unset>") and k not in _MACHINE_CHOSEN]
    shown = [f"{k} {a.get(k, '<unset>')} -> {b.get(k, '<unset>')}" for k in keys[:limit]]
    if len(keys) > limit:
        shown.append(f"and {len(keys) - limit} more")
    return shown


def recorded_settings(directory: Path) -> dict[str, Any] | None:
    """The settings a cell directory was run with; for a cell from before settings were recorded,
    its experiment from the run's ``config.yaml`` (None: nothing recorded yet)."""
    path = directory / SETTINGS_FILE
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            raise ProtodiffError(f"{path}: damaged (not JSON); delete the cell directory to run it again") from None
    config = directory / "run" / "config.yaml"
    if not config.is_file():
        return None
    return {"experiment": to_dict(experiment_from_dict(read_yaml(config), str(config)))}


def _with_todays_defaults(recorded: dict[str, Any]) -> dict[str, Any]:
    """``recorded`` with its experiment parsed by this version of the library, so that an option
    added since the cell ran counts at its default (what the cell ran with) instead of as a
    difference; an experiment this version cannot parse is compared as written."""
    try:
        experiment = to_dict(experiment_from_dict(recorded["experiment"]))
    except (ProtodiffError, ValueError, TypeError, KeyError):
        return recorded
    return {**recorded, "experiment": experiment}


def check_reusable(name: str, directory: Path, settings: dict[str, Any]) -> None:
    """Refuse, in one line naming the differing keys, a cell directory run under other settings.

    A cell from before settings were recorded is compared on its experiment alone."""
    recorded = recorded_settings(directory)
    if recorded is None:
        return
    if "seed" not in recorded:  # only the run's config.yaml is known
        settings = {"experiment": settings["experiment"]}
    changed = differences(_with_todays_defaults(recorded), settings)
    if changed:
        raise ProtodiffError(
            f"cell {name} in {directory.parent.parent} was run with other settings ({'; '.join(changed)}); "
            "pass --retrain to run it again under these, or choose another --out"
        )
