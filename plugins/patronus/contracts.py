"""The ``encoder`` contract: image -> patch features whose every position has a known pixel box."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor, nn

from protodiff._registry.component import Component


@dataclass(frozen=True)
class Box:
    """A pixel box ``[top, bottom) x [left, right)``, clipped to the image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


class Encoder(nn.Module, Component, ABC):
    """Image -> feature map ``z`` (B, D, H, W) whose positions are patches of the input.

    Constructed as ``cls(config, in_channels=..., image_size=...)``.
    """

    #: D, the feature dimension of ``z`` (known after ``__init__``: prototype layers are built for it).
    out_channels: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def receptive_field(self, i: int, j: int) -> Box:
        """The input pixels that can influence position (i, j) of ``z`` (what a prototype "looks at")."""
