"""DiffAE's attribute editing: a linear classifier per attribute on normalised z_sem, and moving z_sem
along the classifier's normal.

As published (phizaz/diffae ``experiment_classifier.py`` with ``manipulate_znormalize``,
``templates_cls.py``, ``manipulate.ipynb``): codes are standardised with the mean and standard
deviation of the dataset's codes; one linear layer (512 -> number of attributes) is trained with
binary cross-entropy by Adam at learning rate 1e-3, batch 32, for 300,000 samples; an edit adds
``amount * sqrt(D)`` times the unit normal of one attribute's weight vector in the standardised
space and maps back. The edited code is rendered from the image's own DDIM inversion
(``model.edit``), exactly as a prototype edit is, so the two can be compared image for image::

    directions = AttributeDirections.for_model(model, config.data.build().open("train"))
    z = model.encode(x0).vector
    smiling = model.edit(x0, directions.move(z, "Smiling", 0.3))      # DiffAE's edit
    s = z.clone(); s[:, 3] = 3.0; edited = model.edit(x0, s)          # a Patronus edit, same call
    called = judge.predict_proba(x0) > 0.5                           # each image's attributes
    dark = model.edit(x0, directions.shift_given(z, called, "dark_bg", 1.0), guidance=1)

Nothing here is specific to z_sem: any condition vector has linear attribute directions, so the
same edit can be tried on Patronus' s or an InfoDiffusion latent. Beside DiffAE's normal the same
fit keeps each attribute's *mean difference* (the mean code of the images with it minus that of
those without; ``direction="mean-difference"``): one shift that moves a code by what, on average,
separates the two groups, in the code's own units, where the normal moves it a fixed number of
standard deviations along the most discriminative axis. ``direction="conditional"`` moves each code
by the mean difference *among images with the same other attributes as its own* (a regression of
the codes on the attribute, the others, and the attribute times each other, fitted on the same
codes; each image's attributes called by a judge, and an image that already has the attribute
left as it is): on a dark background a mark is read by other prototypes than on a light one, and
one shift for every image moves that reading for none of them. ``protodiff explain
attribute-edit RUN`` (:class:`AttributeEditExplainer`) does it for any run, and with ``--classifier`` judges every
edit the way ``effects`` judges a prototype's: the change of every attribute, target and off-target.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.explainer import Explainer, Explanation, flag
from protodiff.encoding import encode_split
from protodiff.errors import OptionError, ProtodiffError
from protodiff.explain.edit import EditSettings, require_vector
from protodiff.explain.effects import EffectMatrix, check_classifier, matrix_tensors, plot_effects
from protodiff.figures import save_image_grid
from protodiff.validation import finite

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion

#: DiffAE's classifier training: 300,000 samples in batches of 32 (templates_cls.py).
PUBLISHED_STEPS = 300_000 // 32
#: Fitted codes each of the four combinations of two attributes (neither, either, both) needs before
#: the conditional difference of one reads the other: with fewer, the interaction would be the noise
#: of a handful of images, and the pair takes the average difference instead.
MIN_CELL = 20


@dataclass
class AttributeDirections:
    """One linear classifier per attribute on standardised codes: ``logit = weight @ (z - mean) / std + bias``."""

    attribute_names: list[str]
    mean: Tensor  # (D,)
    std: Tensor  # (D,)
    weight: Tensor  # (A, D), in the standardised space
    bias: Tensor  # (A,)
    difference: Tensor  # (A, D): the mean code with each attribute minus the mean code without it
    #: (A, D) and (A, A, D): each attribute's difference given the others, and how it changes with
    #: each other attribute an image has (:func:`conditional_differences`).
    given_difference: Tensor
    interaction: Tensor

    @classmethod
    def fit(
        cls,
        vectors: Tensor,
        attributes: Tensor,
        attribute_names: Sequence[str],
        *,
        steps: int = PUBLISHED_STEPS,
        batch_size: int = 32,
        lr: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> AttributeDirections:
        """Train the classifiers on codes ``vectors`` (N, D) and 0/1 ``attributes`` (N, A).

        The weights start at zero and batches are drawn from ``generator``, so a seed fixes the result.
        """
        if vectors.shape[0] != attributes.shape[0] or attributes.shape[1] != len(attribute_names):
            raise ProtodiffError(
                f"{vectors.shape[0]} codes and attributes of shape {tuple(attributes.shape)} for "
                f"{len(attribute_names)} names: one row of attributes per code, one column per name"
            )
        vectors = vectors.detach().float().cpu()
        mean, std = vectors.mean(0), vectors.std(0).clamp(min=1e-6)
        inputs, targets = (vectors - mean) / std, attributes.float().cpu()
        present = targets > 0.5
        if not (present.any(0) & (~present).any(0)).all():
            constant = [name for name, ok in zip(attribute_names, present.any(0) & (~present).any(0)) if not ok]
            raise ProtodiffError(
                f"attribute {constant[0]!r} is the same on every fitted code: fit on images where it varies (more images)"
            )
        difference = torch.stack(
            [vectors[present[:, a]].mean(0) - vectors[~present[:, a]].mean(0) for a in range(targets.shape[1])]
        )
        weight = torch.zeros(targets.shape[1], vectors.shape[1], requires_grad=True)
        bias = torch.zeros(targets.shape[1], requires_grad=True)
        optimizer = torch.optim.Adam([weight, bias], lr=lr)
        generator = generator or torch.Generator().manual_seed(0)
        with torch.enable_grad():
            for _ in range(steps):
                rows = torch.randint(0, len(inputs), (batch_size,), generator=generator)
                loss = F.binary_cross_entropy_with_logits(inputs[rows] @ weight.T + bias, targets[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        given_difference, interaction = conditional_differences(vectors, present)
        return cls(list(attribute_names), mean, std, weight.detach(), bias.detach(), difference, given_difference, interaction)

    @classmethod
    def for_model(
        cls,
        model: ConditionedDiffusion,
        data: LabeledImages,
        *,
        limit: int | None = None,
        steps: int = PUBLISHED_STEPS,
        seed: int = 0,
        progress: bool = False,
    ) -> AttributeDirections:
        """Encode ``data`` (the first ``limit`` images) with ``model`` and fit the classifiers on them."""
        encoded = encode_split(model, data, limit=limit, progress=progress)
        if not encoded.attribute_names:
            raise ProtodiffError("the dataset has no attribute labels: attribute directions need binary attributes")
        return cls.fit(
            encoded.vectors,
            encoded.attributes,
            encoded.attribute_names,
            steps=steps,
            generator=torch.Generator().manual_seed(seed),
        )

    def index(self, attribute: str) -> int:
        if attribute not in self.attribute_names:
            raise ProtodiffError(f"no direction for {attribute!r}; known: {', '.join(self.attribute_names)}")
        return self.attribute_names.index(attribute)

    def logits(self, vectors: Tensor) -> Tensor:
        """The classifiers' logits (N, A) for codes (N, D)."""
        standardised = (vectors.float().cpu() - self.mean) / self.std
        return standardised @ self.weight.T + self.bias

    def direction(self, attribute: str) -> Tensor:
        """The unit normal (D,) of ``attribute``'s decision boundary, in the standardised space."""
        return F.normalize(self.weight[self.index(attribute)], dim=0)

    def move(self, vectors: Tensor, attribute: str, amount: float) -> Tensor:
        """Codes moved ``amount * sqrt(D)`` along ``attribute``'s normal in the standardised space
        (DiffAE's edit; positive adds the attribute, negative removes it), on ``vectors``' device."""
        step = amount * math.sqrt(vectors.shape[1]) * self.direction(attribute)
        moved = (vectors.float().cpu() - self.mean) / self.std + step
        return (moved * self.std + self.mean).to(device=vectors.device, dtype=vectors.dtype)

    def shift(self, vectors: Tensor, attribute: str, amount: float) -> Tensor:
        """Codes moved by ``amount`` times ``attribute``'s mean difference (1: by as much as the codes
        of images with it differ on average from those without), on ``vectors``' device."""
        step = amount * self.difference[self.index(attribute)]
        return (vectors.float().cpu() + step).to(device=vectors.device, dtype=vectors.dtype)

    def shift_given(self, vectors: Tensor, attributes: Tensor, attribute: str, amount: float) -> Tensor:
        """Codes moved by ``amount`` times ``attribute``'s difference among images with the same other
        attributes as each code's own image (``attributes``: (N, A), 0/1, called on those images), on
        ``vectors``' device. A code whose image already is what the edit asks (has the attribute, for
        a positive amount; lacks it, for a negative one) stays: moved again, a dark image's marks
        fade (seen in a strip), and there is nothing to add."""
        if attributes.shape != (vectors.shape[0], len(self.attribute_names)):
            raise ProtodiffError(
                f"{vectors.shape[0]} codes and attributes of shape {tuple(attributes.shape)}: one row per code, "
                f"one column per attribute ({len(self.attribute_names)})"
            )
        a = self.index(attribute)
        called = attributes.float().cpu()
        step = self.given_difference[a] + called @ self.interaction[a]
        moving = ~self.already_there(called, attribute, amount)
        moved = vectors.float().cpu() + amount * step * moving.float()[:, None]
        return moved.to(device=vectors.device, dtype=vectors.dtype)

    def already_there(self, attributes: Tensor, attribute: str, amount: float) -> Tensor:
        """(N,) whether each image, by its ``attributes`` (N, A), already is what an edit of
        ``attribute`` by ``amount`` asks: has it, for a positive amount; lacks it, otherwise."""
        has = attributes[:, self.index(attribute)].cpu() > 0.5
        return has if amount > 0 else ~has


class AttributeEditExplainer(Explainer):
    """DiffAE's attribute editing on any vector conditioner: each attribute's linear-classifier normal
    (or its mean difference), fitted on the train split's codes, moved along on real images
    regenerated from their inverted x_T."""

    @dataclass
    class Config(EditSettings):
        """Which attributes, moved how far; the edit itself (sampler, guidance, start) as
        :class:`EditSettings` and ``protodiff explain edit`` make it."""

        attribute: list[str] = flag("An attribute to edit, e.g. --attribute red_square (repeatable; default: all).")
        #: ``normal``: DiffAE's, along the classifier's unit normal; ``mean-difference``: by the mean
        #: code with the attribute minus the mean code without it; ``conditional``: by that
        #: difference among the fitted images with the same other attributes as the image (which
        #: the classifier calls on it: needs ``--classifier``).
        direction: Literal["normal", "mean-difference", "conditional"] = "normal"
        #: How far to move. ``normal``: in DiffAE's unit (``amount * sqrt(D)`` standard deviations
        #: along the unit normal; DiffAE's manipulate.ipynb uses 0.3); the differences: in
        #: multiples of the difference. Default: 0.3 and 1.0. Negative removes the attribute.
        amount: float | None = None
        #: Codes of the train split the classifiers are fitted on (DiffAE: the whole split).
        fit_images: int = 10_000
        #: The classifiers' Adam steps (DiffAE: 300,000 samples in batches of 32).
        steps: int = PUBLISHED_STEPS
        #: Images regenerated per forward pass.
        batch_size: int = 64

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.fit_images < 2 or self.steps < 1 or self.batch_size < 1:
                raise ValueError("fit_images must be at least 2, steps and batch_size positive")
            if self.amount is None:
                self.amount = 0.3 if self.direction == "normal" else 1.0  # the differences: in their own unit
            finite(amount=self.amount)
            if self.follow != "none":  # a direction moves every dimension: none is left to follow
                raise ValueError("attribute-edit moves every dimension along a direction; follow must be 'none'")

    def explain(
        self,
        model: ConditionedDiffusion,
        batch: Tensor,
        *,
        train: LabeledImages,
        data: LabeledImages | None = None,
        classifier: AttributeClassifier | None = None,
        generator: torch.Generator | None = None,
    ) -> Explanation:
        c = self.config
        require_vector(model, "attribute-edit")
        if classifier is not None:
            check_classifier(classifier, list(train.attribute_names))
        elif c.direction == "conditional":
            raise OptionError(
                "direction=conditional reads each image's other attributes with a judge: pass --classifier DIR "
                "(protodiff classifier train)"
            )
        unknown = [name for name in c.attribute if name not in train.attribute_names]
        if unknown:  # before the directions are fitted
            raise OptionError(f"no direction for {unknown[0]!r}; known: {', '.join(train.attribute_names) or 'none'}")
        seed = 0 if generator is None else int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        directions = AttributeDirections.for_model(model, train, limit=c.fit_images, steps=c.steps, seed=seed)
        attributes = c.attribute or directions.attribute_names
        for name in attributes:
            directions.index(name)  # a one-line error for an unknown name, before any sampling
        sampler = c.sampler.build(schedule=model.schedule)
        vectors = model.encode(batch.to(model.device)).vector.detach()
        x_T = c.starting_noise(model, batch, vectors, sampler, generator)
        n = len(batch)
        amount = float(c.amount)  # resolved from the direction by the config
        called = None
        if c.direction == "conditional":
            assert classifier is not None  # refused above
            called = (classifier.predict_proba(batch.to(model.device)) > 0.5).float().cpu()
            moved = [directions.shift_given(vectors, called, name, amount) for name in attributes]
        else:
            move = directions.move if c.direction == "normal" else directions.shift
            moved = [move(vectors, name, amount) for name in attributes]
        edited = torch.cat([vectors, *moved])
        images = c.edit_many(model, batch, edited, x_T, sampler=sampler, chunk=c.batch_size, generator=generator)
        images = images.view(len(attributes) + 1, n, *batch.shape[1:])
        labels = [f"{name} {amount:+g}" for name in attributes]
        tensors = {
            "images": batch,
            "x_T": x_T,
            "vectors": vectors,
            "reconstructed": images[0],
            "edited": images[1:].transpose(0, 1),
            "directions": directions.weight,
        }
        if called is not None:  # what each edit's difference was conditioned on
            tensors["called"] = called
        meta = {
            "attributes": attributes,
            "direction": c.direction,
            "amount": amount,
            "fit_images": min(c.fit_images, len(train)),
            "direction_accuracy": _accuracy(directions, model, train if data is None else data, c.fit_images),
        }
        columns = [("real", batch), ("reconstructed", images[0])] + list(zip(labels, images[1:]))
        figures = {
            "edit.png": lambda path: save_image_grid(
                path,
                columns,
                per_row=1,
                title=f"attribute edits: each attribute's {DIRECTION_TITLES[c.direction]}, amount {amount:+g}",
            )
        }
        if called is not None:  # per attribute, the images already as the edit asks: left as they are
            meta["left_as_they_are"] = {name: int(directions.already_there(called, name, amount).sum()) for name in attributes}
        if classifier is not None:
            probs = classifier.predict_proba(images.flatten(0, 1)).view(len(attributes) + 1, n, -1)
            matrix = EffectMatrix(labels, list(classifier.attribute_names), (probs[1:] - probs[:1]).cpu(), probs[0].cpu())
            tensors.update(matrix_tensors(matrix))
            meta.update(matrix.to_json())
            figures["effects.png"] = lambda path: plot_effects(matrix, path, title="effect of each attribute edit")
        return Explanation("attribute-edit", tensors, meta, figures)


#: What each direction is called in a figure's title.
DIRECTION_TITLES = {
    "normal": "normal",
    "mean-difference": "mean difference",
    "conditional": "mean difference given the image's other attributes",
}


def conditional_differences(vectors: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
    """Each attribute's mean difference given the others: (A, D) and (A, A, D).

    For attribute a, the codes (N, D) are regressed (least squares) on 1, a, every other attribute b
    and a * b; the difference of an image whose other attributes are y is ``given[a] + y @
    interaction[a]``: what having a changes among images that share y, each other attribute
    changing it by its own amount (with a single other attribute, exactly the difference of the
    group means within each of its two values). An interaction a * b enters only where each
    of the four combinations of a and b has ``MIN_CELL`` fitted codes; an attribute that never varies
    takes no part (the least-norm solution leaves its coefficients at zero).
    """
    rows, count = present.shape
    y = present.float()
    ones = torch.ones(rows, 1)
    given = torch.zeros(count, vectors.shape[1])
    interaction = torch.zeros(count, count, vectors.shape[1])
    for a in range(count):
        others = [b for b in range(count) if b != a]
        crossed = [b for b in others if _every_combination(present[:, a], present[:, b])]
        design = torch.cat([ones, y[:, [a]], y[:, others], y[:, [a]] * y[:, crossed]], dim=1)
        coefficients = torch.linalg.lstsq(design.double(), vectors.double(), driver="gelsd").solution.float()
        given[a] = coefficients[1]
        interaction[a, crossed] = coefficients[2 + len(others) :]
    return given, interaction


def _every_combination(a: Tensor, b: Tensor) -> bool:
    """Whether each of the four combinations of two 0/1 columns has ``MIN_CELL`` rows."""
    has_a, has_b = a > 0.5, b > 0.5
    return all(int(((has_a == p) & (has_b == q)).sum()) >= MIN_CELL for p in (True, False) for q in (True, False))


def _accuracy(directions: AttributeDirections, model: ConditionedDiffusion, data: LabeledImages, limit: int) -> dict:
    """Each direction's classifier accuracy on ``data`` (held out when it is not the train split)."""
    encoded = encode_split(model, data, limit=limit)
    correct = ((directions.logits(encoded.vectors) > 0).long() == encoded.attributes.long()).float().mean(0)
    return {name: round(float(v), 4) for name, v in zip(directions.attribute_names, correct)}


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("attribute-edit", AttributeEditExplainer)
