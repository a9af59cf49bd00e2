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

Nothing here is specific to z_sem: any condition vector has linear attribute directions, so the
same edit can be tried on Patronus' s or an InfoDiffusion latent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.model import ConditionedDiffusion

#: DiffAE's classifier training: 300,000 samples in batches of 32 (templates_cls.py).
PUBLISHED_STEPS = 300_000 // 32


@dataclass
class AttributeDirections:
    """One linear classifier per attribute on standardised codes: ``logit = weight @ (z - mean) / std + bias``."""

    attribute_names: list[str]
    mean: Tensor  # (D,)
    std: Tensor  # (D,)
    weight: Tensor  # (A, D), in the standardised space
    bias: Tensor  # (A,)

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
        return cls(list(attribute_names), mean, std, weight.detach(), bias.detach())

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
        return cls.fit(encoded.vectors, encoded.attributes, encoded.attribute_names, steps=steps,
                       generator=torch.Generator().manual_seed(seed))

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
