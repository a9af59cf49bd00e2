"""The bench's attribute classifier: one judge per dataset, shared by every method's cell.

Metrics and explainers that read attributes off generated images (``reconstruction-agreement``,
``effects``, ``shortcuts``, ``emergence``) need a judge. Training one per dataset, once, and
handing the same one to every method means the methods are judged alike and no cell pays for its
own. It is trained on the preset's ``judge_split`` (the train split by default: on the bundled
data the attributes vary independently there; a dataset with a planted shortcut needs a split
without it, as ``protodiff classifier train`` explains), seeded by the bench's seed, so shards
train identical judges.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from protodiff.config import parse
from protodiff.devices import resolve_device
from protodiff.experiment import ExperimentConfig
from protodiff.io import write_json
from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig
from protodiff.schema import ValuesOf, read_json

ACCURACY_FILE = "accuracy.json"
#: What a cell's record and the report read from a judge's ``accuracy.json``.
ACCURACY_SCHEMA = {"split": str, "steps": int, "test_accuracy": ValuesOf(float)}


def judge_dir(out: Path, dataset: str, experiment: ExperimentConfig, options: dict[str, Any], split: str, seed: int) -> Path:
    """``OUT/judges/DATASET-HASH``: the hash of the data section and of how the judge is trained
    keeps apart judges of differently configured copies of a dataset, or trained otherwise."""
    key = json.dumps([repr(experiment.data), options, split, seed], sort_keys=True, default=str)
    return out / "judges" / f"{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def train_judge(
    out: Path, dataset: str, experiment: ExperimentConfig, options: dict[str, Any], split: str, seed: int, device: str
) -> tuple[Path, dict[str, Any]]:
    """The dataset's judge (trained now, or the one a previous run saved) and its held-out accuracy."""
    directory = judge_dir(out, dataset, experiment, options, split, seed)
    if not (directory / ACCURACY_FILE).is_file():
        config = parse(ClassifierConfig, {"seed": seed, **options}, source="bench preset", where="judge")
        source = experiment.data.build()
        judge = AttributeClassifier.for_dataset(source.open(split), config).to(resolve_device(device))
        judge.fit(source.open(split), progress=False)
        judge.save(directory)
        accuracy = judge.accuracy(source.open("test"))
        write_json(directory / ACCURACY_FILE, {"split": split, "steps": config.steps, "test_accuracy": accuracy})
    return directory, read_json(directory / ACCURACY_FILE, ACCURACY_SCHEMA, fix=f"delete {directory} to train the judge again")
