"""The ``conditioner`` contract: what turns a clean image into a readable condition.

A :class:`Conditioner` reads a clean image ``x0`` and returns a :class:`Condition` whose
``vector`` is the thing a person inspects and steers (Patronus: one prototype activation per
dimension). ``embed`` maps that vector to the embedding the denoiser consumes; the conditioner's
``preferred_mode`` says how the denoiser applies it. Conditioners built from an encoder and a
prototype layer use those two smaller contracts, so a new backbone or a new similarity can be
swapped in without touching the conditioner.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

from torch import Tensor, nn

from protodiff._registry.component import Component

#: How a denoiser applies the condition embedding in each residual block: the name of a registered
#: conditioning mode (:mod:`protodiff.contracts.cond_mode`), e.g. the core's ``add`` (a per-block
#: bias, Patronus), ``scale`` (h (1 + c), DiffAE) or ``adagn`` (h (1 + a) + b, InfoDiffusion).
CondMode = str


@dataclass
class Condition:
    """The readable condition of a batch of images.

    ``vector`` (B, K) is the condition itself, ``names`` one label per dimension, ``maps``
    (B, K, H, W) an optional spatial account of each dimension (Patronus: the distance of every
    patch to each prototype, i.e. *where* a concept is), ``aux_loss`` an optional scalar the
    conditioner wants added to the denoising loss (a KL or MMD term, a prototype-distinct loss),
    and ``extras`` any further per-image tensors a conditioner wants to hand to its analysis
    tools (indexed with the batch like ``vector``).
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

    def detach(self) -> Condition:
        return Condition(
            self.vector.detach(),
            list(self.names),
            None if self.maps is None else self.maps.detach(),
            None,
            {k: v.detach() for k, v in self.extras.items()},
        )


class Conditioner(nn.Module, Component, ABC):
    """Clean image -> :class:`Condition`; condition vector -> denoiser embedding.

    Constructed as ``cls(config, in_channels=..., image_size=...)``. Besides ``encode`` and
    ``embed``, a conditioner sets ``dim`` and ``embed_dim`` (the model builds its denoiser for
    them, so they must be known after ``__init__``) and may override the two class attributes
    below, which are read before anything is built.
    """

    #: K, the length of ``Condition.vector`` (0 for an unconditional model).
    dim: int
    #: Width of ``embed``'s output; the denoiser is built for it (0: no embedding).
    embed_dim: int
    #: The conditioning mode the published method uses (a name in the ``cond_mode`` registry). The
    #: model uses it unless the denoiser's config sets ``cond_mode``; the resolved config records it.
    preferred_mode: ClassVar[CondMode] = "add"
    #: The registered latent prior ``protodiff fit-prior`` fits when the experiment's ``prior``
    #: section names none (None: the user must name one).
    default_prior: ClassVar[str | None] = None

    def __init__(self) -> None:
        super().__init__()
        self._names: list[str] | None = None

    @abstractmethod
    def encode(self, x0: Tensor) -> Condition:
        """The condition of clean images ``x0`` in [-1, 1] (gradients flow: it is trained end to end)."""

    @abstractmethod
    def embed(self, vector: Tensor) -> Tensor | None:
        """The (B, embed_dim) embedding of condition vectors (None when ``embed_dim`` is 0)."""

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
