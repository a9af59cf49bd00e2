"""The inputs an explainer declares (:data:`~protodiff.contracts.explainer.INPUTS`), gathered for it.

``protodiff explain`` and ``protodiff bench`` hand explainers the same things from the same
sources, so an explainer behaves alike under both: the data split its images come from, the run's
train split (opened only when asked for), a generator seeded with the command's seed, and an
attribute classifier whose attributes must match the data's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from protodiff.explain.effects import check_classifier

if TYPE_CHECKING:
    from protodiff.contracts.dataset import DatasetSource, LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier


def load_classifier(directory: str | Path, data: LabeledImages, device: str | torch.device) -> AttributeClassifier:
    """A saved attribute classifier, refused in one line when it judges other attributes than ``data`` has."""
    from protodiff.metrics.attribute_classifier import AttributeClassifier

    classifier = AttributeClassifier.load(directory, device=device)
    check_classifier(classifier, list(data.attribute_names))
    return classifier


def explainer_inputs(wanted: dict[str, bool], source: DatasetSource, data: LabeledImages, split: str, *, seed: int,
                     classifier: AttributeClassifier | None = None) -> dict[str, Any]:
    """The keyword inputs for an explainer that declares ``wanted`` (its ``inputs()``).

    ``data`` is the opened ``split`` of ``source``. A classifier that is not available is passed as
    ``None``; callers refuse an explainer that requires one before calling this.
    """
    given: dict[str, Any] = {}
    for name in wanted:
        if name == "data":
            given[name] = data
        elif name == "train":
            given[name] = data if split == "train" else source.open("train")
        elif name == "generator":
            given[name] = torch.Generator().manual_seed(seed)
        elif name == "classifier":
            given[name] = classifier
    return given

