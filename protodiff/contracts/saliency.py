"""The ``saliency`` contract: a named source of one map per image saying *where* something is.

A source is what the ``localisation`` metric scores against a dataset's regions
(``--set localisation.map=NAME``): a model's own account of where a concept is (Patronus'
prototype activation maps, registered by its plugin), an attribution method (DF-CAM and DF-RISE,
registered by the dfx plugin), or a control that looks at no model (the core's ``random`` and
``centre``). Every source answers ``maps(model, x0, target=..., generator=...)`` with (B, H, W)
maps at the images' size, larger where it places the thing it explains, like captum's
``attribute(inputs, target=...)``.

A *targeted* source explains one attribute at a time: it is given a :class:`Target`, the
attribute and the condition dimension that detects it best on real images (chosen by the metric
on the train split, so never on the images it scores). An untargeted source explains the image
(the denoiser's whole prediction, say) and is asked once per image with ``target=None``; its map
is scored against every attribute of that image.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from protodiff._registry.component import Component

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion


@dataclass(frozen=True)
class Target:
    """What a targeted map explains: an attribute and the condition dimension that detects it best."""

    #: The attribute's name, as the dataset spells it.
    attribute: str
    #: The index of the condition dimension whose value best detects the attribute on real images
    #: (highest AUROC against the labels); None for a model without a condition.
    dimension: int | None = None
    #: That dimension's name (``Condition.names``).
    dimension_name: str | None = None
    #: That dimension's AUROC for the attribute (> 0.5: higher when the attribute is present).
    auroc: float | None = None


class Saliency(Component, ABC):
    """Constructed as ``cls(config)``; ``maps`` returns (B, H, W) float maps of images ``x0``."""

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def targeted(self) -> bool:
        """Whether a map depends on the attribute explained (then ``maps`` gets a :class:`Target`)."""
        return False

    def check(self, model: ConditionedDiffusion) -> None:
        """Raise a one-line ProtodiffError if this source cannot map ``model`` (before any work)."""

    def describe(self) -> dict[str, Any]:
        """What the maps are, for the metric's JSON (the protocol a reader needs to trust them)."""
        return {}

    @abstractmethod
    def maps(self, model: ConditionedDiffusion, x0: Tensor, *, target: Target | None, generator: torch.Generator) -> Tensor:
        """Maps (B, H, W) of clean images ``x0`` (B, C, H, W) in [-1, 1] on the model's device,
        larger where the source places what it explains; ``generator`` seeds every random draw."""
