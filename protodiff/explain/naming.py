"""Names for condition dimensions, from two kinds of evidence.

*What a dimension detects*: over real images, how well its value separates images that have an
attribute from those that do not (AUROC against a judge's calls, so no dataset labels are needed).
*What raising it does*: the effect matrix of ``protodiff explain effects`` (the mean change of the
attribute's probability when the dimension is raised, and how often it adds the attribute). The
two need not agree: a Patronus prototype may detect a mark without drawing it when raised. A
name is proposed from the edit when its effect is large enough, else from detection; both kinds
of evidence are shown beside it. Prototypes whose activations rise and fall together over real
images are one *concept group* (:func:`concept_groups`): an edit with ``follow: regression`` moves
them as one, and ``names`` shows each group under one name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

    from protodiff.contracts.dataset import LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


@dataclass(frozen=True)
class Detection:
    """The attribute a dimension separates best on real images: AUROC > 0.5 means the dimension is
    higher when the attribute is present, < 0.5 when it is absent."""

    index: int
    attribute: str
    auroc: float

    @property
    def separation(self) -> float:
        return max(self.auroc, 1.0 - self.auroc)

    @property
    def name(self) -> str:
        return self.attribute if self.auroc >= 0.5 else f"no {self.attribute}"


@torch.no_grad()
def auroc_table(
    model: ConditionedDiffusion,
    data: LabeledImages,
    classifier: AttributeClassifier,
    images: int = 512,
    vectors: Tensor | None = None,
) -> Tensor:
    """(K, A): how well each dimension separates each of the classifier's attributes over the first
    ``images`` of ``data``, with the classifier's calls as the truth (AUROC; NaN for an attribute
    it sees on all or none of them). ``vectors``: those images' condition vectors, when the caller
    has encoded them already."""
    from sklearn.metrics import roc_auc_score

    from protodiff.encoding import encode_split

    count = min(images, len(data))
    if vectors is None:
        vectors = encode_split(model, data, limit=count).vectors
    values = vectors[:count].numpy()
    pictures = torch.stack([data[i][0] for i in range(count)]).to(next(classifier.parameters()).device)
    calls = (classifier.predict_proba(pictures) > 0.5).numpy()
    table = torch.full((values.shape[1], calls.shape[1]), float("nan"))
    for a in range(calls.shape[1]):
        if calls[:, a].all() or not calls[:, a].any():
            continue
        for j in range(values.shape[1]):
            table[j, a] = float(roc_auc_score(calls[:, a], values[:, j]))
    return table


def detections(table: Tensor, attributes: list[str]) -> list[Detection]:
    """Each dimension's best-separated attribute (either way round) in an :func:`auroc_table`."""
    separation = (table - 0.5).abs().nan_to_num(-1.0)
    out = []
    for j in range(len(table)):
        a = int(separation[j].argmax())
        out.append(Detection(j, attributes[a], float(table[j, a])) if separation[j, a] >= 0 else Detection(j, "", 0.5))
    return out


def attribute_detectors(table: Tensor, attributes: list[str]) -> list[Detection]:
    """Per attribute the table can judge, the dimension that separates it best either way round (a
    dark background is often detected by the *low* values of a light-patch prototype)."""
    best = (table - 0.5).abs().nan_to_num(-1.0).argmax(dim=0).tolist()
    return [
        Detection(j, name, float(table[j, a]))
        for a, (j, name) in enumerate(zip(best, attributes, strict=True))
        if not table[:, a].isnan().all()
    ]


def given_for(table: Tensor, edited: int, attribute: int) -> list[int]:
    """What an edit of dimension ``edited`` that adds ``attribute`` (a column of ``table``) is best
    followed *given*: for every other attribute, the dimension other than ``edited`` that separates
    it best either way round. Held, they keep the followers from adding what comes with the edited
    concept in the data (docs/steering.md, "Following, given the other attributes")."""
    separation = (table - 0.5).abs().nan_to_num(-1.0)
    separation[edited] = -1.0
    return sorted(
        {int(separation[:, b].argmax()) for b in range(table.shape[1]) if b != attribute and not table[:, b].isnan().all()}
    )


def proposals(
    count: int, effects: list[dict] | None, detected: list[Detection] | None, *, min_effect: float, min_auroc: float
) -> dict[int, str]:
    """Index -> proposed name: the attribute a dimension turns on (effect >= ``min_effect``), else
    the one it detects (separation >= ``min_auroc``); a second dimension with the same name gets
    ``name (2)``, and so on, the strongest first."""
    candidates: list[tuple[float, int, str]] = []  # (strength, index, name); edits rank above detections
    for j in range(count):
        effect = next((s for s in effects or [] if s["index"] == j), None)
        if effect is not None and effect["effect"] >= min_effect:
            candidates.append((1.0 + effect["effect"], j, effect["attribute"]))
        elif detected is not None and detected[j].attribute and detected[j].separation >= min_auroc:
            candidates.append((detected[j].separation, j, detected[j].name))
    names: dict[int, str] = {}
    seen: dict[str, int] = {}
    for _, j, name in sorted(candidates, key=lambda c: -c[0]):
        seen[name] = seen.get(name, 0) + 1
        names[j] = name if seen[name] == 1 else f"{name} ({seen[name]})"
    return names


def evidence(j: int, effects: list[dict] | None, detected: list[Detection] | None) -> str:
    """Both kinds of evidence for dimension ``j``, as one line's tail."""
    parts = []
    effect = next((s for s in effects or [] if s["index"] == j), None)
    if effect is not None:
        parts.append(
            f"raising it: {effect['attribute']} {effect['effect']:+.2f}, same direction on {effect['consistency']:.0%} of images"
        )
    if detected is not None and detected[j].attribute:
        parts.append(f"detects: {detected[j].name} AUROC {detected[j].separation:.2f}")
    return "; ".join(parts) if parts else "no evidence"


def concept_groups(vectors: Tensor, threshold: float = 0.5) -> list[list[int]]:
    """Dimensions whose activations over real images (``vectors``, (N, K)) correlate above
    ``threshold``, joined transitively (a~b and b~c: one group), largest group first; a dimension
    correlated with no other is in none."""
    correlation = torch.corrcoef(vectors.float().T).nan_to_num()
    linked = (correlation > threshold).fill_diagonal_(False)
    group = list(range(len(linked)))  # union-find over the links

    def root(j: int) -> int:
        while group[j] != j:
            group[j] = group[group[j]]
            j = group[j]
        return j

    for a, b in linked.nonzero().tolist():
        group[root(a)] = root(b)
    members: dict[int, list[int]] = {}
    for j in range(len(linked)):
        members.setdefault(root(j), []).append(j)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))


def group_name(members: list[int], proposed: dict[int, str]) -> str:
    """One name for a concept group: its members' proposed names without their ``(2)`` counters,
    the most common first, joined with " / " when they disagree ("-" when none has a name)."""
    bases = [proposed[j].rsplit(" (", 1)[0] for j in members if j in proposed]
    ranked = sorted(set(bases), key=lambda name: (-bases.count(name), bases.index(name)))
    return " / ".join(ranked) or "-"
