"""``prototypes``: the saliency source of Patronus' own *where*, for the ``localisation`` metric.

For an attribute, the map is the activation map of the prototype that detects it best on real
images (the metric's :class:`~protodiff.contracts.saliency.Target`): each patch's activation,
placed on the image by the encoder's receptive fields (:func:`protodiff_patronus.conditioner.activation_maps`).
It reads the clean image only: no noise, no denoiser. Any model whose conditioner is built on
prototypes has these maps; any other is refused in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.saliency import Saliency, Target
from protodiff.errors import ProtodiffError
from protodiff_patronus.conditioner import activation_maps
from protodiff_patronus.contracts import require_prototypes

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion


class PrototypeMaps(Saliency):
    """The activation map of each attribute's best-detecting prototype, at the image's size."""

    @dataclass
    class Config:
        pass

    @property
    def targeted(self) -> bool:
        return True

    def check(self, model: ConditionedDiffusion) -> None:
        require_prototypes(model, "localisation.map=prototypes")

    def describe(self) -> dict[str, Any]:
        return {
            "map": "the target prototype's per-patch activation on the clean image, each patch at the "
            "centre of its receptive field, bilinear between centres"
        }

    @torch.no_grad()
    def maps(self, model: ConditionedDiffusion, x0: Tensor, *, target: Target | None, generator: torch.Generator) -> Tensor:
        conditioner = require_prototypes(model, "localisation.map=prototypes")
        if target is None or target.dimension is None:
            raise ProtodiffError("the prototypes map is targeted: it needs the prototype (target.dimension) to show")
        encoder, layer = conditioner.encoder, conditioner.prototype_layer
        return activation_maps(encoder, layer, x0.to(model.device))[:, target.dimension]  # type: ignore[arg-type]


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.saliency.add("prototypes", PrototypeMaps)
