"""The two kinds of component Patronus adds to protodiff, and their contracts.

``encoder``          :class:`Encoder`: image -> patch features whose every position has a known
                     pixel :class:`Box` (what a prototype "looks at")
``prototype_layer``  :class:`PrototypeLayer`: patch features -> one activation per prototype, and
                     where it fired

The core knows neither: the plugin adds both kinds in its ``protodiff_add_kinds`` hook, with the
conformance checks in :mod:`protodiff_patronus.testing`. A conditioner *built on prototypes* keeps
its layer as ``prototype_layer`` and the encoder that places them on the image as ``encoder``;
tools that show or locate prototypes find them there through :func:`require_prototypes`, which
answers any other model in one line.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from protodiff._registry.component import Component
from protodiff.errors import UnsupportedModel

if TYPE_CHECKING:
    from protodiff.contracts.conditioner import Conditioner
    from protodiff.model import ConditionedDiffusion


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


class PrototypeLayer(nn.Module, Component, ABC):
    """Feature map -> (activations ``s`` (B, m), distance maps (B, m, H, W)).

    Constructed as ``cls(config, feature_dim=D)``.
    """

    #: m, the number of prototypes (the length of ``s``; known after ``__init__``).
    num_prototypes: int

    @abstractmethod
    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]: ...

    def patch_activations(self, maps: Tensor) -> Tensor:
        """Each patch's activation (B, m, H, W) from the layer's ``maps``: larger where the patch is
        more like the prototype, and (for the layers here) the value whose maximum over patches is
        ``s``, so a prototype's map shows where its activation comes from. The default, ``-maps``,
        ranks the patches right for any layer whose maps are distances; a layer overrides it to give
        the activation in its own units."""
        return -maps

    def aux_loss(self) -> Tensor | None:
        """An optional regulariser on the prototypes themselves (e.g. the distinct loss)."""
        return None


def require_prototypes(model: ConditionedDiffusion, tool: str) -> Conditioner:
    """``model``'s conditioner if it is built on prototypes (a :class:`PrototypeLayer` as its
    ``prototype_layer`` and an encoder as its ``encoder``), else a one-line error naming ``tool``.

    Every prototype-only tool calls this first, so a model whose condition has no prototypes (a
    semantic code, a regularised latent) is refused before anything is computed.
    """
    conditioner = model.conditioner
    if isinstance(getattr(conditioner, "prototype_layer", None), PrototypeLayer) and isinstance(
        getattr(conditioner, "encoder", None), Encoder
    ):
        return conditioner
    raise UnsupportedModel(
        f"{tool} needs a prototype conditioner (one with a prototype layer); this model's conditioner "
        f"{model.config.conditioner.name!r} has no prototypes"
    )
