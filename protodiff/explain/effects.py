"""``effects``: what each condition dimension does to every attribute, judged by a classifier.

Each dimension in turn is enhanced (set to its plausible maximum, the ``quantile`` of its values
over the explained images) on every image, the images are regenerated from their own inverted
x_T, and an attribute classifier reads each regeneration. The effect of dimension j on attribute a
is the mean change of the classifier's probability for a against the unedited regeneration (so the
round-trip error of inversion cancels); its consistency is the fraction of images where a moves the
way the mean says. Works for any conditioner with an editable vector, the baselines' too.

The judge must not share the shortcut it is asked to find: train it where the attributes vary
independently (``shapes`` without ``shortcut``), or it reads one attribute off the other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import LabeledImages
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.contracts.sampler import Sampler
from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError
from protodiff.explain.coupling import check_neighbours, local_quantile
from protodiff.explain.edit import EditSettings, require_vector

if TYPE_CHECKING:
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


@dataclass
class EffectMatrix:
    """What enhancing each of K dimensions did to A attributes on N images.

    ``change`` (K, N, A) is, per dimension and image, the change of each attribute's probability
    against the unedited regeneration; the effect, its consistency and its standard error are read
    off it, so a rule that needs the spread over images (``shortcuts``' significance test) has it.
    ``before`` (N, A), the probabilities of the unedited regenerations, turns changes into
    decisions: which images lacked an attribute, and whether the edit gave it to them.
    """

    dimensions: list[str]
    attributes: list[str]
    change: Tensor
    before: Tensor | None = None

    @property
    def images(self) -> int:
        return self.change.shape[1]

    @property
    def effect(self) -> Tensor:
        """(K, A) the mean change over images."""
        return self.change.mean(dim=1)

    @property
    def consistency(self) -> Tensor:
        """(K, A) in [0, 1]: the fraction of images whose change has the sign of the mean."""
        return (torch.sign(self.change) == torch.sign(self.effect)[:, None]).float().mean(dim=1)

    @property
    def stderr(self) -> Tensor:
        """(K, A) the standard error of the effect over images (NaN from a single image)."""
        if self.images < 2:
            return torch.full_like(self.effect, float("nan"))
        return self.change.std(dim=1) / self.images**0.5

    def success_and_leakage(self) -> tuple[Tensor, Tensor]:
        """(K, A) each: ``success``, the share of the images lacking attribute a (the judge, on the
        unedited regeneration) that have it once dimension j is raised; ``leakage``, over those
        same images, the mean share of the other attributes whose decision flips. NaN where no
        image lacks the attribute. Needs ``before``."""
        has, lacking, flipped = self._decisions()
        count = lacking.sum(dim=0)  # (A,)
        success = (has.float() * lacking[None]).sum(dim=1) / count
        others = flipped.sum(dim=2, keepdim=True) - flipped  # flips of the other attributes, per (j, n, a)
        leakage = (others / max(1, len(self.attributes) - 1) * lacking[None]).sum(dim=1) / count
        return success, leakage

    def largest_flip(self) -> Tensor:
        """(K, A) over the images lacking attribute a, the share on which the other attribute that
        flips most often flips once dimension j is raised: what ``leakage``, a mean over the other
        attributes, dilutes (a background that turns on a quarter of the images is a leakage of
        0.036 among eight attributes). NaN where no image lacks a. Needs ``before``."""
        _, lacking, flipped = self._decisions()
        share = torch.einsum("knb,na->kab", flipped, lacking) / lacking.sum(dim=0)[None, :, None]  # (K, A, A)
        share.diagonal(dim1=1, dim2=2).zero_()  # a's own flip is its success, not a leak
        return share.amax(dim=2).where(lacking.sum(dim=0) > 0, float("nan"))

    def _decisions(self) -> tuple[Tensor, Tensor, Tensor]:
        """The judge's decisions after each edit (K, N, A), which images lacked each attribute before
        (N, A, as 0/1) and which decisions each edit flipped (K, N, A, as 0/1)."""
        if self.before is None:
            raise ValueError("success and leakage need the unedited probabilities (before)")
        had = self.before > 0.5  # (N, A)
        has = (self.before[None] + self.change) > 0.5  # (K, N, A)
        return has, (~had).float(), (has != had[None]).float()

    def to_json(self) -> dict:
        out = {
            "dimensions": self.dimensions,
            "attributes": self.attributes,
            "effect": _rounded(self.effect),
            "consistency": _rounded(self.consistency),
            "stderr": _rounded(self.stderr) if self.images > 1 else None,
        }
        if self.before is not None:
            success, leakage = self.success_and_leakage()
            out.update(
                success=_rounded(success),
                leakage=_rounded(leakage),
                largest_flip=_rounded(self.largest_flip()),
                lacking=[int(v) for v in (self.before <= 0.5).sum(dim=0)],
            )
        return out

    def suggestions(self) -> list[dict]:
        """For each dimension, the attribute it turns on most (largest positive effect), with the
        effect and its consistency: what ``protodiff names RUN --suggest`` proposes."""
        out = []
        effect, consistency = self.effect, self.consistency
        for j, name in enumerate(self.dimensions):
            a = int(effect[j].argmax())
            out.append(
                {
                    "dimension": name,
                    "index": j,
                    "attribute": self.attributes[a],
                    "effect": round(float(effect[j, a]), 4),
                    "consistency": round(float(consistency[j, a]), 4),
                }
            )
        return out


def _rounded(matrix: Tensor) -> list[list[float | None]]:
    """Rows of 4-decimal floats, NaN as null (JSON has no NaN)."""
    return [[None if math.isnan(float(v)) else round(float(v), 4) for v in row] for row in matrix]


def check_classifier(classifier: AttributeClassifier, attribute_names: list[str] | None) -> None:
    """A one-line error when the classifier judges other attributes than the data has."""
    if attribute_names is not None and list(classifier.attribute_names) != list(attribute_names):
        raise ProtodiffError(
            f"the classifier judges {classifier.attribute_names}, the data has {list(attribute_names)}; "
            "train one on this dataset (protodiff classifier train)"
        )


def enhanced_values(vectors: Tensor, quantile: float) -> Tensor:
    """(K,) the plausible maximum of each dimension: its ``quantile`` over real images' vectors."""
    return torch.quantile(vectors.float(), quantile, dim=0)


def local_enhanced_values(reference: Tensor, vectors: Tensor, given: tuple[int, ...], neighbours: int, quantile: float) -> Tensor:
    """(N, K) each dimension's enhanced value on each image: its ``quantile`` over the ``neighbours``
    reference vectors nearest the image in the ``given`` dimensions other than itself
    (:func:`local_quantile`); the one given dimension, when only one is given, has nothing to find
    neighbours by and takes its quantile over all of them."""
    plain = enhanced_values(reference, quantile)
    return torch.stack(
        [
            local_quantile(reference, vectors, j, given, neighbours, quantile)
            if set(given) - {j}
            else plain[j].to(vectors).expand(len(vectors))
            for j in range(vectors.shape[1])
        ],
        dim=1,
    )


def enhanced_batch(vectors: Tensor, high: Tensor) -> Tensor:
    """(K + 1) N vectors: block 0 the originals, block j + 1 with dimension j set to ``high[..., j]``
    (``high`` (K,) one value per dimension, or (N, K) one per image)."""
    n, k = vectors.shape
    edited = vectors.repeat(k + 1, 1)
    for j in range(k):
        edited[(j + 1) * n : (j + 2) * n, j] = high[..., j]
    return edited


@torch.no_grad()
def effect_matrix(
    model: ConditionedDiffusion,
    images: Tensor,
    classifier: AttributeClassifier,
    *,
    sampler: Sampler,
    reference: Tensor | None = None,
    quantile: float = 1.0,
    neighbours: int | None = None,
    chunk: int = 64,
    settings: EditSettings | None = None,
    generator: torch.Generator | None = None,
) -> EffectMatrix:
    """The dimension x attribute effect matrix on ``images`` (see the module).

    A dimension's enhanced value is the ``quantile`` of its values over ``reference`` vectors of
    real images (default: those of ``images``), which are also what ``follow: regression`` fits
    its coupling on; with ``neighbours``, over that many reference vectors nearest each image in
    ``settings``' given dimensions, a value per image (:func:`local_enhanced_values`). Every edit
    is made as ``settings`` say (default: ``EditSettings()``, as ``protodiff explain edit`` makes
    it), all (dimension, image) edits batched ``chunk`` at a time from the same starting noise as
    the unedited reference.
    """
    require_vector(model, "effects")
    settings = settings or EditSettings()
    images = images.to(model.device)
    vectors = model.encode(images).vector.detach()
    x_T = settings.starting_noise(model, images, vectors, sampler, generator)
    reference = vectors if reference is None else reference.to(vectors.device)
    names = model.conditioner.names
    if neighbours is None:
        high = enhanced_values(reference, quantile)
    else:
        high = local_enhanced_values(reference, vectors, settings.given_indices(names), neighbours, quantile)
    coupling = settings.coupling(reference, names)
    n, k = vectors.shape
    edited = enhanced_batch(vectors, high)
    regenerated = settings.edit_many(
        model, images, edited, x_T, sampler=sampler, chunk=chunk, coupling=coupling, generator=generator
    )
    probs = classifier.predict_proba(regenerated).view(k + 1, n, -1)
    change = probs[1:] - probs[:1]  # (K, N, A)
    return EffectMatrix(names, list(classifier.attribute_names), change.cpu(), probs[0].cpu())


def matrix_tensors(matrix: EffectMatrix) -> dict[str, Tensor]:
    """What ``tensors.safetensors`` holds of an effect matrix: the per-image changes and their summaries."""
    tensors = {"effect": matrix.effect, "consistency": matrix.consistency, "change": matrix.change}
    if matrix.before is not None:
        tensors["before"] = matrix.before
        tensors["success"], tensors["leakage"] = matrix.success_and_leakage()
        tensors["largest_flip"] = matrix.largest_flip()
    return tensors


#: A heat map shows at most this many dimensions; a wider latent shows its strongest ones.
MAX_ROWS = 32


def strongest_rows(effect: Tensor, limit: int = MAX_ROWS) -> list[int]:
    """The rows of a (K, A) effect matrix to draw: all of them up to ``limit``, else the ``limit``
    with the largest |effect| on any attribute, in their original order."""
    if len(effect) <= limit:
        return list(range(len(effect)))
    return sorted(effect.abs().amax(dim=1).topk(limit).indices.tolist())


def plot_effects(matrix: EffectMatrix, path: Path, title: str = "effect of enhancing each dimension") -> None:
    """Heat map, dimensions (or edits) down and attributes across, diverging around zero with the
    values written in. A latent wider than :data:`MAX_ROWS` (DiffAE's 512 dimensions) shows its
    strongest dimensions, and the title says what the rest do at most."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = strongest_rows(matrix.effect)
    effect = matrix.effect[rows]
    k, a = effect.shape
    if k < len(matrix.effect):
        rest = torch.ones(len(matrix.effect), dtype=torch.bool)
        rest[rows] = False
        title = (
            f"{title}:\nthe {k} strongest of {len(matrix.effect)} dimensions; the other {int(rest.sum())} "
            f"move no attribute by more than {float(matrix.effect[rest].abs().max()):.2f}"
        )
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * a, 1.6 + 0.3 * k), constrained_layout=True)
    limit = max(float(effect.abs().max()), 1e-6)
    image = ax.imshow(effect.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(a), matrix.attributes, rotation=45, ha="right")
    ax.set_yticks(range(k), [matrix.dimensions[j] for j in rows])
    for (row, col), value in zip(torch.cartesian_prod(torch.arange(k), torch.arange(a)).tolist(), effect.flatten().tolist()):
        ax.text(col, row, f"{value:+.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="change of attribute probability")
    ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


class EffectsExplainer(Explainer):
    """Dimension x attribute effect matrix: enhance each dimension, judge the change of every attribute."""

    @dataclass
    class Config(EditSettings):
        """How each dimension is enhanced (the edit itself: sampler, guidance, start, as
        :class:`EditSettings` and ``protodiff explain edit``)."""

        #: The enhanced value of a dimension: this quantile of its values over the reference images.
        quantile: float = 1.0
        #: Real images of the split over which each dimension's plausible maximum is taken.
        reference: int = 256
        #: With ``given``: take the quantile on each image over only this many reference images, those
        #: nearest it in the given dimensions: a prototype is raised to where it goes on images that
        #: read like this one on the other concepts (docs/steering.md: the warm cast on a dark
        #: background, measured at 100 of 1000 reference images). None: over all of them.
        neighbours: int | None = None
        #: Images regenerated per forward pass.
        batch_size: int = 64

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0.0 <= self.quantile <= 1.0:
                raise ValueError("quantile must be in [0, 1]")
            if self.reference < 1 or self.batch_size < 1:
                raise ValueError("reference and batch_size must be positive")
            check_neighbours(self.neighbours, self.given)

    def matrix(
        self,
        model: ConditionedDiffusion,
        batch: Tensor,
        classifier: AttributeClassifier,
        data: LabeledImages | None,
        generator: torch.Generator | None = None,
    ) -> EffectMatrix:
        """The effect matrix as this config says, the classifier checked against ``data``."""
        check_classifier(classifier, getattr(data, "attribute_names", None))
        c = self.config
        reference = encode_split(model, data, limit=c.reference).vectors if data is not None else None
        return effect_matrix(
            model,
            batch,
            classifier,
            sampler=c.sampler.build(schedule=model.schedule),
            reference=reference,
            quantile=c.quantile,
            neighbours=c.neighbours,
            chunk=c.batch_size,
            settings=c,
            generator=generator,
        )

    def explain(
        self,
        model: ConditionedDiffusion,
        batch: Tensor,
        *,
        classifier: AttributeClassifier,
        data: LabeledImages | None = None,
        generator: torch.Generator | None = None,
    ) -> Explanation:
        matrix = self.matrix(model, batch, classifier, data, generator)
        meta = {**matrix.to_json(), "suggestions": matrix.suggestions(), "images": len(batch), "quantile": self.config.quantile}
        c = self.config
        meta |= {"guidance": c.guidance, "follow": c.follow, "given": list(c.given), "neighbours": c.neighbours}
        return Explanation("effects", matrix_tensors(matrix), meta, {"effects.png": lambda path: plot_effects(matrix, path)})


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("effects", EffectsExplainer)
