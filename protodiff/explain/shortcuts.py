"""``shortcuts``: dimensions that move more than one attribute, ranked, with the training labels beside.

A dimension that moves two attributes at once is a suspected coupling: either the model learnt a
shortcut (the two co-occur in its training data) or the dimension is simply entangled. Beside each
coupling stands the correlation of the two attributes in the training labels, so the reader sees
whether the data explains it.

The rule (its numbers are in ``shortcuts.json``). An effect is a mean over N images, so it carries
noise: with 32 dimensions and 8 attributes, 16 images and no real coupling at all, the largest
effect is routinely 0.2-0.3. Every effect is therefore tested against zero with a two-sided t-test
at family-wise level ``alpha``, Bonferroni-corrected over all K x A effects, i.e. it counts only
where ``|effect| > q * stderr`` with ``q`` the t quantile ``1 - alpha / (2 K A)`` at N - 1 degrees
of freedom. A coupling of dimension j with attributes (a, b)

* scores ``min(|e_a| - q se_a, |e_b| - q se_b)``: the weaker leg's effect at the lower end of its
  confidence interval, the effect size the images support on both legs (negative: not supported);
* is listed when both effects are at least ``threshold / 2``, or when it scores above zero;
* carries its ``replication``: of the dimensions that significantly move a, how many also move b
  the way j couples them (both up, or one up and one down), and the same from b's side; the side
  where the larger share agrees is reported (``{"attribute", "dimensions", "agreeing"}``);
* is ``flagged`` when it scores above zero (both legs are real at family-wise level ``alpha``), both
  effects are at least ``threshold`` (the smallest coupling worth a reader's attention), and it is
  replicated by more than half the dimensions that move one of its attributes.

Why replication: a shortcut is a dependency the model learnt between two attributes, so it shows
in (most of) the ways the model has of producing one of them: with red squares always warm in
training, every prototype that draws a red square also warms the image. One dimension that moves a
second attribute while the other dimensions moving either attribute leave it alone is entanglement
of that dimension (its patch also covers background, say), real but not a learnt dependency; it
is listed with its replication, not flagged. Couplings are sorted flagged first, each group by score.

Too few images cannot confirm anything: an attribute flipped on a fraction e of the images is
significant only when ``e > q^2 / (N + q^2)``, which ``detectable`` reports (0.6 at N = 16, about
0.2 at 64 and 0.1 at 128 for 32 x 8 effects); the explainer warns when that is above ``threshold``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
from scipy import stats
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.explainer import Explanation
from protodiff.errors import ProtodiffWarning
from protodiff.explain.effects import EffectMatrix, EffectsExplainer, check_classifier, matrix_tensors, plot_effects
from protodiff.io import write_json

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


def label_correlation(labels: Tensor) -> Tensor:
    """(A, A) Pearson correlation of 0/1 attribute labels (N, A); NaN where a label is constant."""
    centred = labels.float() - labels.float().mean(dim=0)
    spread = centred.pow(2).sum(dim=0).sqrt()
    return (centred.T @ centred) / (spread[:, None] * spread[None, :])


def critical_value(images: int, tests: int, alpha: float) -> float:
    """The two-sided Bonferroni t quantile: ``|effect| > q * stderr`` holds by chance for any of
    ``tests`` zero effects over ``images`` images with probability at most ``alpha``."""
    if images < 2:
        return math.inf
    return float(stats.t.ppf(1.0 - alpha / (2 * tests), df=images - 1))


def detectable(images: int, q: float) -> float:
    """The smallest effect ``images`` can confirm when it is an attribute flipped on that fraction of
    the images (changes of 0 or 1): ``e > q sqrt(e (1 - e) / N)``, i.e. ``e > q^2 / (N + q^2)``."""
    return 1.0 if math.isinf(q) else q * q / (images + q * q)


def replication(significant: Tensor, effect: Tensor, j: int, a: int, b: int) -> dict:
    """How many of the dimensions that move ``a`` (or ``b``) also move the other attribute the way
    dimension ``j`` couples them (same or opposite direction): the direction where the larger share
    agrees, as ``{"attribute", "dimensions", "agreeing"}`` (see the module)."""
    relation = torch.sign(effect[j, a] * effect[j, b])
    agrees = significant[:, a] & significant[:, b] & (torch.sign(effect[:, a] * effect[:, b]) == relation)
    best = {"attribute": a, "dimensions": 0, "agreeing": 0}
    for x in (a, b):
        moving = int(significant[:, x].sum())
        agreeing = int((agrees & significant[:, x]).sum())
        if moving and agreeing / moving > (best["agreeing"] / best["dimensions"] if best["dimensions"] else -1):
            best = {"attribute": x, "dimensions": moving, "agreeing": agreeing}
    return best


def couplings(matrix: EffectMatrix, threshold: float, alpha: float = 0.05, correlation: Tensor | None = None) -> list[dict]:
    """Every (dimension, attribute pair) the module's rule lists: flagged first, each group by score."""
    effect = matrix.effect
    q = critical_value(matrix.images, effect.numel(), alpha)
    supported = effect.abs() - q * torch.nan_to_num(matrix.stderr, nan=math.inf)
    significant = supported > 0
    out = []
    for j, name in enumerate(matrix.dimensions):
        for a, b in itertools.combinations(range(len(matrix.attributes)), 2):
            weaker = min(abs(float(effect[j, a])), abs(float(effect[j, b])))
            score = min(float(supported[j, a]), float(supported[j, b]))
            if weaker < threshold / 2 and score <= 0:
                continue
            r = None if correlation is None else float(correlation[a, b])
            shared = replication(significant, effect, j, a, b)
            out.append(
                {
                    "prototype": name,
                    "attributes": [matrix.attributes[a], matrix.attributes[b]],
                    "effects": [round(float(effect[j, a]), 4), round(float(effect[j, b]), 4)],
                    "score": round(score, 4) if math.isfinite(score) else None,
                    "train_correlation": None if r is None or math.isnan(r) else round(r, 4),
                    "replication": {**shared, "attribute": matrix.attributes[shared["attribute"]]},
                    "flagged": score > 0 and weaker >= threshold and 2 * shared["agreeing"] > shared["dimensions"],
                }
            )
    return sorted(out, key=lambda c: (not c["flagged"], -math.inf if c["score"] is None else -c["score"]))


class ShortcutsExplainer(EffectsExplainer):
    """Suspected shortcuts: dimensions that move two attributes, ranked, with their training-label correlation."""

    #: At 128 images an attribute flipped on 10% of them is told from noise over 32 x 8 effects.
    default_images = 128
    min_images = 128

    @dataclass
    class Config(EffectsExplainer.Config):
        #: A coupling is flagged only when both attributes' probabilities move by at least this much.
        threshold: float = 0.1
        #: Family-wise error rate of the test that each leg of a flagged coupling is not noise.
        alpha: float = 0.05
        #: The edited condition alone, not the edits' default EDIT_GUIDANCE. Measured on the
        #: planted-shortcut runs of docs/shortcuts.md: at 1 the planted pair ranks first and is
        #: flagged (controls: none flagged in fp32, one yellow/gradient entanglement on one of two
        #: bf16 controls); at 2 every edit's leakage into other attributes is amplified too, both
        #: controls list it and a planted pair ranks second. ``--set guidance=2`` asks how
        #: couplings behave under amplified edits.
        guidance: float = 1.0
        #: Each raised dimension alone, the others held. With ``regression`` the dimensions that
        #: co-vary with it over real images would move too, and in a run trained on coupled data
        #: (red squares only on warm images) those include the other attribute's: the ranking would
        #: read the encoder's correlations, not what the denoiser does with one dimension.
        follow: Literal["none", "regression"] = "none"

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0.0 < self.threshold <= 1.0:
                raise ValueError("threshold must be in (0, 1]")
            if not 0.0 < self.alpha < 1.0:
                raise ValueError("alpha must be in (0, 1)")

    def explain(
        self,
        model: ConditionedDiffusion,
        batch: Tensor,
        *,
        classifier: AttributeClassifier,
        data: LabeledImages | None = None,
        train: LabeledImages | None = None,
        generator: torch.Generator | None = None,
    ) -> Explanation:
        check_classifier(classifier, getattr(train, "attribute_names", None))
        c = self.config
        matrix = self.matrix(model, batch, classifier, data, generator)
        q = critical_value(matrix.images, matrix.effect.numel(), c.alpha)
        smallest = detectable(matrix.images, q)
        if smallest > c.threshold:
            warnings.warn(
                f"with {matrix.images} images only effects above {smallest:.2f} can be told from noise "
                f"(threshold {c.threshold}); explain more images (--n) to confirm smaller couplings",
                ProtodiffWarning,
                stacklevel=2,
            )
        correlation = label_correlation(train.attributes()) if train is not None else None
        report = {
            "threshold": c.threshold,
            "alpha": c.alpha,
            "images": matrix.images,
            "critical_value": round(q, 4) if math.isfinite(q) else None,
            "detectable": round(smallest, 4),
            "couplings": couplings(matrix, c.threshold, c.alpha, correlation),
        }
        tensors = matrix_tensors(matrix)
        if correlation is not None:
            tensors["train_correlation"] = torch.nan_to_num(correlation)
        return Explanation(
            "shortcuts",
            tensors,
            {**matrix.to_json(), "suggestions": matrix.suggestions(), "images": len(batch)},
            {"shortcuts.json": lambda path: write_json(path, report), "effects.png": lambda path: plot_effects(matrix, path)},
        )


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("shortcuts", ShortcutsExplainer)
