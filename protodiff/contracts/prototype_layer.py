"""The ``prototype_layer`` contract: patch features -> one activation per prototype, and where it fired."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

from protodiff.component import Component


class PrototypeLayer(nn.Module, Component, ABC):
    """Feature map -> (activations ``s`` (B, m), distance maps (B, m, H, W)).

    Constructed as ``cls(config, feature_dim=D)``.
    """

    #: m, the number of prototypes (the length of ``s``; known after ``__init__``).
    num_prototypes: int

    @abstractmethod
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]: ...

    def aux_loss(self) -> Tensor | None:
        """An optional regulariser on the prototypes themselves (e.g. the distinct loss)."""
        return None
