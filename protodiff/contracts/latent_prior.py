"""The ``latent_prior`` contract: a generative model of condition vectors.

A conditional diffusion model only generates when given a condition. A latent prior, fitted to the
conditions of real images (Patronus' ``s``), supplies them: sample ``s`` from the prior, then ``x``
given ``s``. A conditioner names the prior it is usually paired with in ``default_prior``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor, nn

from protodiff._registry.component import Component


class LatentPrior(nn.Module, Component, ABC):
    """Constructed as ``cls(config, dim=K)``."""

    @abstractmethod
    def fit(self, vectors: Tensor, *, generator: torch.Generator | None = None, progress: bool = False) -> list[float]:
        """Fit to (N, K) vectors; returns the training-loss history."""

    @abstractmethod
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` new vectors (n, K)."""
