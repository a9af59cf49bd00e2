"""Conditioning contracts: what turns a clean image into a readable condition.

A :class:`Conditioner` reads a clean image ``x0`` and returns a :class:`Condition` whose
``vector`` is the thing a person inspects and steers (Patronus: one prototype activation per
dimension; DiffAE: a semantic code). ``embed`` maps that vector to the embedding the denoiser
consumes. Conditioners built from an encoder and a prototype layer use the two smaller contracts
here, so a new backbone or a new similarity can be swapped in without touching the conditioner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import Tensor, nn

from protodiff.config import Component

#: How a denoiser applies the condition embedding in each residual block:
#: ``add`` a per-block bias (Patronus), ``scale`` h*(1+c) (DiffAE), ``adagn`` h*(1+a)+b (InfoDiffusion).
CondMode = Literal["add", "scale", "adagn"]


@dataclass
class Condition:
    """The readable condition of a batch of images.

    ``vector`` (B, K) is the condition itself, ``names`` one label per dimension, ``maps``
    (B, K, H, W) an optional spatial account of each dimension (Patronus: the distance of every
    patch to each prototype, i.e. *where* a concept is), and ``aux_loss`` an optional scalar the
    conditioner wants added to the denoising loss (a KL or MMD term, a prototype-distinct loss).
    """

    vector: Tensor
    names: list[str]
    maps: Tensor | None = None
    aux_loss: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.vector.shape[0]

    def __getitem__(self, index: slice | Tensor | list[int]) -> Condition:
        """The condition of a sub-batch (``aux_loss`` is a batch statistic and is dropped)."""
        return Condition(
            self.vector[index],
            list(self.names),
            None if self.maps is None else self.maps[index],
            None,
            {k: v[index] for k, v in self.extras.items()},
        )

    def with_vector(self, vector: Tensor) -> Condition:
        """The same condition with an edited vector (maps no longer describe it, so they are dropped)."""
        return replace(self, vector=vector, maps=None, aux_loss=None)

    def detach(self) -> Condition:
        return Condition(
            self.vector.detach(),
            list(self.names),
            None if self.maps is None else self.maps.detach(),
            None,
            {k: v.detach() for k, v in self.extras.items()},
        )


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

    #: D, the feature dimension of ``z``.
    out_channels: int

    @abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    @abstractmethod
    def receptive_field(self, i: int, j: int) -> Box:
        """The input pixels that can influence position (i, j) of ``z``."""

    @torch.no_grad()
    def feature_shape(self, in_channels: int, image_size: int) -> tuple[int, int, int]:
        """(D, H, W) of ``z`` for a square input, found by running one zero image."""
        param = next(self.parameters(), None)
        device = param.device if param is not None else None
        return tuple(self(torch.zeros(1, in_channels, image_size, image_size, device=device)).shape[1:])


class PrototypeLayer(nn.Module, Component, ABC):
    """Feature map -> (activations ``s`` (B, m), distance maps (B, m, H, W)).

    Constructed as ``cls(config, feature_dim=D)``.
    """

    num_prototypes: int

    @abstractmethod
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]: ...

    def aux_loss(self) -> Tensor | None:
        """An optional regulariser on the prototypes themselves (e.g. the distinct loss)."""
        return None


class Conditioner(nn.Module, Component, ABC):
    """Clean image -> :class:`Condition`; condition vector -> denoiser embedding.

    Constructed as ``cls(config, in_channels=..., image_size=...)``.
    """

    #: K, the length of ``Condition.vector`` (0 for an unconditional model).
    dim: int
    #: Width of ``embed``'s output; the denoiser is built for it (0: no embedding).
    embed_dim: int
    #: The conditioning mode the published method uses; a denoiser config may override it.
    preferred_mode: CondMode = "add"

    def __init__(self) -> None:
        super().__init__()
        self._names: list[str] | None = None

    @abstractmethod
    def encode(self, x0: Tensor) -> Condition: ...

    @abstractmethod
    def embed(self, vector: Tensor) -> Tensor | None: ...

    @property
    def names(self) -> list[str]:
        """One label per condition dimension; ``dim_00``... until a person names them."""
        return list(self._names) if self._names is not None else self.default_names()

    @names.setter
    def names(self, names: list[str]) -> None:
        if len(names) != self.dim:
            raise ValueError(f"expected {self.dim} names, got {len(names)}")
        self._names = list(names)

    def default_names(self) -> list[str]:
        return [f"dim_{i:02d}" for i in range(self.dim)]


class Unconditional(Conditioner):
    """The ``none`` conditioner: an empty condition, so the denoiser is a plain DDPM."""

    dim = 0
    embed_dim = 0

    def __init__(self, config: Component.Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config

    def encode(self, x0: Tensor) -> Condition:
        return Condition(x0.new_zeros(x0.shape[0], 0), [])

    def embed(self, vector: Tensor) -> Tensor | None:
        return None
