"""Names for condition dimensions, from two kinds of evidence.

*What a dimension detects*: over real images, how well its value separates images that have an
attribute from those that do not (AUROC against a judge's calls, so no dataset labels are needed).
*What raising it does*: the effect matrix of ``protodiff explain effects`` (the mean change of the
attribute's probability when the dimension is raised, and how often it adds the attribute). The
two need not agree: a Patronus prototype may detect a mark without drawing it when raised. A
name is proposed from the edit when its effect is large enough, else from detection; both kinds
of evidence are shown beside it. Prototypes whose activations rise and fall together over real
images are one *concept group* (:func:`concept_groups`): an edit with ``follow: regression`` moves
them as one, and ``names`` shows each group under one name. Prototypes that each detect part of
one attribute, and need not fire together at all (two triangle prototypes, each on different
triangles), are its *detection group* (:func:`detection_group`): raised together, they add it
where one alone adds it to half the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import Tensor

    from protodiff.contracts.dataset import LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier


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


#: A dimension joins an attribute's detection group when the group then separates the attribute
#: at least this much better (AUROC; docs/steering.md, "Split detectors", measures it).
GROUP_GAIN = 0.05


@torch.no_grad()
def judge_calls(data: LabeledImages, classifier: AttributeClassifier, images: int = 512) -> Tensor:
    """(N, A) bool: whether the classifier sees each of its attributes on the first ``images`` of
    ``data`` (the truth :func:`auroc_table` and :func:`detection_group` read, so no dataset labels are needed)."""
    count = min(images, len(data))
    pictures = torch.stack([data[i][0] for i in range(count)]).to(next(classifier.parameters()).device)
    return (classifier.predict_proba(pictures) > 0.5).cpu()


def auroc_table(vectors: Tensor, calls: Tensor) -> Tensor:
    """(K, A): how well each dimension of ``vectors`` (N, K) separates each attribute of ``calls``
    (N, A, whether each image has it), as an AUROC; NaN for an attribute on all or none of them."""
    from sklearn.metrics import roc_auc_score

    values, truth = vectors[: len(calls)].float().numpy(), calls.numpy()
    table = torch.full((values.shape[1], truth.shape[1]), float("nan"))
    for a in range(truth.shape[1]):
        if truth[:, a].all() or not truth[:, a].any():
            continue
        for j in range(values.shape[1]):
            table[j, a] = float(roc_auc_score(truth[:, a], values[:, j]))
    return table


@dataclass(frozen=True)
class DetectionGroup:
    """Dimensions that detect one attribute between them (:func:`detection_group`): ``members``,
    the best detector first, and how well they separate it together (an AUROC >= 0.5, whichever
    way round the members read it)."""

    members: list[int]
    separation: float


def detection_group(vectors: Tensor, calls: Tensor, table: Tensor, attribute: int, gain: float = GROUP_GAIN) -> DetectionGroup:
    """The dimensions that detect ``attribute`` between them, its best detector first.

    Starting from the dimension that separates it best either way round (``table``, an
    :func:`auroc_table` of ``vectors`` against ``calls``), add the dimension that most raises the
    group's AUROC, while that rises by at least ``gain``. The group's score on an image is its
    highest member's rank among the images (a "no" detector's rank from the top): an image has
    the attribute when *any* member says so, which is what two prototypes that each read part of
    it (different triangles) say together and neither says alone. Only dimensions that separate
    this attribute best of all, the same way round, may join: the best detector of another
    attribute would raise the score through what the attributes share, and an edit holds it
    (``given``)."""
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    separation = (table - 0.5).abs().nan_to_num(-1.0)
    first = int(separation[:, attribute].argmax())
    upward = bool(table[first, attribute] > 0.5)
    truth = calls[:, attribute].numpy()
    values = vectors[: len(calls)].float().numpy()
    ranks = torch.from_numpy(rankdata(values if upward else -values, axis=0))  # ties share a rank
    candidates = [
        j
        for j in range(len(table))
        if j != first and int(separation[j].argmax()) == attribute and bool(table[j, attribute] > 0.5) == upward
    ]
    group, score = [first], float(table[first, attribute] if upward else 1.0 - table[first, attribute])
    while candidates:
        scores = [float(roc_auc_score(truth, ranks[:, [*group, j]].amax(dim=1).numpy())) for j in candidates]
        best = max(range(len(candidates)), key=scores.__getitem__)
        if scores[best] - score < gain:
            break
        group.append(candidates.pop(best))
        score = scores[best]
    return DetectionGroup(group, score)


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


def given_for(table: Tensor, edited: int | Sequence[int], attribute: int) -> list[int]:
    """What an edit of dimension ``edited`` (or of a detection group) that adds ``attribute`` (a
    column of ``table``) is best followed *given*: for every other attribute, the dimension not
    edited that separates it best either way round. Held, they keep the followers from adding what
    comes with the edited concept in the data (docs/steering.md, "Following, given the other attributes")."""
    separation = (table - 0.5).abs().nan_to_num(-1.0)
    separation[[edited] if isinstance(edited, int) else list(edited)] = -1.0
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
