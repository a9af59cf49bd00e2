"""``standard-normal``: the prior InfoDiffusion's regularisers pull its latents towards, N(0, I).

InfoDiffusion generates by drawing the latent from N(0, I) (isjakewong/InfoDiffusion ``run.py``,
``--prior regular``: ``a = torch.randn(n, a_dim)``) and then the image given it. Nothing is learned
by ``fit``: it measures how far the encoded latents are from N(0, I) (the MMD the training term
uses, on up to 1000 of them) and returns that as its one-entry history, so a user sees whether the
regulariser did its job before trusting samples drawn this way. A model whose latents stray from
N(0, I) (the mmd = kld = 0 ablation, a short run) generates better from ``latent-ddpm``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.validation import at_least
from protodiff_infodiff.regularisers import mmd


class StandardNormal(LatentPrior):
    """z ~ N(0, I) of the model's latent size."""

    @dataclass
    class Config:
        #: How many vectors ``fit`` compares with as many N(0, I) draws.
        check_samples: int = 1000

        def __post_init__(self) -> None:
            at_least(2, check_samples=self.check_samples)

    def __init__(self, config: Config, *, dim: int) -> None:
        super().__init__()
        self.config = config
        self.dim = dim

    def fit(self, vectors: Tensor, *, generator: torch.Generator | None = None, progress: bool = False) -> list[float]:
        """Nothing to learn; returns [MMD(vectors, N(0, I) draws)] (0 when they match)."""
        generator = generator or torch.Generator().manual_seed(0)
        vectors = vectors.detach().float().cpu()
        rows = torch.randperm(len(vectors), generator=generator)[: self.config.check_samples]
        reference = torch.randn(len(rows), self.dim, generator=generator)
        return [mmd(vectors[rows], reference).item()]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, self.dim, generator=generator)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.latent_prior.add("standard-normal", StandardNormal)
