"""``shortcuts``: dimensions that move more than one attribute, ranked, with the training labels beside.

A dimension that turns on two attributes at once is a suspected coupling: either the model learnt a
shortcut (the two co-occur in its training data) or the dimension is simply entangled. Beside each
coupling stands the correlation of the two attributes in the training labels, so the reader sees
whether the data explains it.

The rule (also in ``shortcuts.json``'s ``threshold``): a coupling of dimension j with attributes
(a, b) scores ``min(|effect[j, a]|, |effect[j, b]|)``, as strong as its weaker leg. Every pair
scoring at least half the threshold is listed; it is ``flagged`` when it scores at least the
threshold, i.e. enhancing the dimension changes *both* attributes' classifier probability by at
least ``threshold`` on average.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from protodiff.contracts.explainer import Explanation
from protodiff.explain.effects import EffectMatrix, EffectsExplainer, check_classifier, plot_effects
from protodiff.hookspecs import hookimpl
from protodiff.io import write_json
from protodiff.registry import Registries

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


def label_correlation(labels: Tensor) -> Tensor:
    """(A, A) Pearson correlation of 0/1 attribute labels (N, A); NaN where a label is constant."""
    centred = labels.float() - labels.float().mean(dim=0)
    spread = centred.pow(2).sum(dim=0).sqrt()
    return (centred.T @ centred) / (spread[:, None] * spread[None, :])


def couplings(matrix: EffectMatrix, threshold: float, correlation: Tensor | None = None) -> list[dict]:
    """Every (dimension, attribute pair) scoring at least ``threshold / 2``, highest score first (see the module)."""
    out = []
    for j, name in enumerate(matrix.dimensions):
        effect = matrix.effect[j]
        for a, b in itertools.combinations(range(len(matrix.attributes)), 2):
            score = min(abs(float(effect[a])), abs(float(effect[b])))
            if score < threshold / 2:
                continue
            r = None if correlation is None else float(correlation[a, b])
            out.append({
                "prototype": name,
                "attributes": [matrix.attributes[a], matrix.attributes[b]],
                "effects": [round(float(effect[a]), 4), round(float(effect[b]), 4)],
                "score": round(score, 4),
                "train_correlation": None if r is None or math.isnan(r) else round(r, 4),
                "flagged": score >= threshold,
            })
    return sorted(out, key=lambda c: -c["score"])


class ShortcutsExplainer(EffectsExplainer):
    """Suspected shortcuts: dimensions that move two attributes, ranked, with their training-label correlation."""

    @dataclass
    class Config(EffectsExplainer.Config):
        #: A coupling is flagged when both attributes' probabilities move by at least this much.
        threshold: float = 0.2

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0.0 < self.threshold <= 1.0:
                raise ValueError("threshold must be in (0, 1]")

    def explain(self, model: ConditionedDiffusion, batch: Tensor, *, classifier: AttributeClassifier,
                data: LabeledImages | None = None, train: LabeledImages | None = None) -> Explanation:
        check_classifier(classifier, getattr(train, "attribute_names", None))
        c = self.config
        matrix = self.matrix(model, batch, classifier, data)
        correlation = label_correlation(train.attributes()) if train is not None else None
        report = {"threshold": c.threshold, "couplings": couplings(matrix, c.threshold, correlation)}
        tensors = {"effect": matrix.effect, "consistency": matrix.consistency}
        if correlation is not None:
            tensors["train_correlation"] = torch.nan_to_num(correlation)
        return Explanation(
            "shortcuts", tensors, {**matrix.to_json(), "suggestions": matrix.suggestions(), "images": len(batch)},
            {"shortcuts.json": lambda path: write_json(path, report),
             "effects.png": lambda path: plot_effects(matrix, path)},
        )


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("shortcuts", ShortcutsExplainer)
