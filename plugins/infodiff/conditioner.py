"""The ``infodiff`` conditioner: a low-dimensional latent of the clean image, regularised towards
N(0, I), conditions the denoiser by adaptive group normalisation (Wang et al., "InfoDiffusion",
ICML 2023).

x0 -> UNet-shaped encoder -> latent a -> Linear(dim, embed_dim) -> each UNet block computes a scale
and a shift from it and applies h (1 + scale) + shift after the time embedding's (``adagn``).
The objective adds ``mmd_weight`` x MMD(latents, N(0, I) samples) and ``kld_weight`` x KL to the
denoising loss. What the denoiser sees follows the published code (isjakewong/InfoDiffusion
``models.py`` ``InfoDiff.forward`` and ``loss_fn``):

- ``kld_weight`` 0: the encoder's output a itself (deterministic); MMD is measured on a. With
  ``mmd_weight`` 0 too this is InfoDiffusion's "DiffAE" ablation.
- ``kld_weight`` > 0: mean and log-variance heads read a; in training the denoiser sees a sample
  mean + exp(log_var / 2) eps (eps from the global RNG, like dropout, so it is saved with every
  checkpoint and a resumed run continues exactly), otherwise the mean; MMD is measured on the mean.
  The heads exist only then: unused parameters would be untrained, and DDP refuses them.

The regularisers are batch statistics and are computed in training mode only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from protodiff import Registries, hookimpl
from protodiff.contracts.conditioner import Condition, Conditioner
from protodiff.nn.levels import UNetShape
from protodiff.validation import at_least
from protodiff_infodiff.encoder import UNetEncoder
from protodiff_infodiff.regularisers import gaussian_kl, mmd


def published_encoder() -> UNetShape:
    """InfoDiffusion's encoder at 32 and 64 px (``models.py``, ``InfoDiff``/``Encoder``): the
    denoiser's levels, base 64 channels, multipliers 1,2,2,2, two blocks per level, single-head
    attention at level 2, GroupNorm with 32 groups, dropout 0.1."""
    return UNetShape(channel_mult=(1, 2, 2, 2), attention_levels=(2,), attention_heads=1, norm_groups=32)


class InfoDiffConditioner(Conditioner):
    """InfoDiffusion's latent as the condition; one ``dim_NN`` name per dimension."""

    preferred_mode = "adagn"
    default_prior = "latent-ddpm"

    @dataclass
    class Config:
        #: Latent size (``a_dim``): 32 in the published training command, 256 in its latent-evaluation commands.
        dim: int = 32
        #: Width of the latent's embedding (published ``fc_a``: Linear(a_dim, 4 x the UNet's base channels)).
        embed_dim: int = 256
        #: Weight of MMD(latents, N(0, I)) (published: 0.1).
        mmd_weight: float = 0.1
        #: Weight of the KL term on the mean and log-variance heads (published default: 0, off).
        kld_weight: float = 0.0
        #: The encoder's UNet (its levels, widths and attention).
        encoder: UNetShape = field(default_factory=published_encoder)

        def __post_init__(self) -> None:
            at_least(1, dim=self.dim, embed_dim=self.embed_dim)
            at_least(0, mmd_weight=self.mmd_weight, kld_weight=self.kld_weight)

    presets = {
        "test": {
            "dim": 4,
            "embed_dim": 16,
            "kld_weight": 0.01,  # exercises the heads and both terms
            "encoder": {
                "base_channels": 8,
                "channel_mult": (1, 2),
                "num_res_blocks": 1,
                "attention_levels": (1,),
                "attention_heads": 1,
                "norm_groups": 4,
                "dropout": 0.0,
            },
        },
    }

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = UNetEncoder(config.encoder, in_channels=in_channels, image_size=image_size, dim=config.dim)
        self.variational = config.kld_weight > 0
        if self.variational:
            self.mean_head = nn.Linear(config.dim, config.dim)
            self.log_var_head = nn.Linear(config.dim, config.dim)
        self.embedding = nn.Linear(config.dim, config.embed_dim)
        nn.init.xavier_uniform_(self.embedding.weight)  # as published (AuxiliaryUNet.initialize)
        nn.init.zeros_(self.embedding.bias)
        self.dim = config.dim
        self.embed_dim = config.embed_dim

    def encode(self, x0: Tensor) -> Condition:
        a = self.encoder(x0)
        if not self.variational:
            return Condition(a, self.names, aux_loss=self._regulariser(a))
        mean, log_var = self.mean_head(a), self.log_var_head(a)
        vector = mean + torch.randn_like(mean) * (0.5 * log_var).exp() if self.training else mean
        kl = gaussian_kl(mean.float(), log_var.float()) if self.training else None
        return Condition(vector, self.names, aux_loss=self._regulariser(mean, kl), extras={"log_var": log_var})

    def _regulariser(self, latent: Tensor, kl: Tensor | None = None) -> Tensor | None:
        """mmd_weight x MMD(latent, N(0, I) samples) + kld_weight x ``kl``, in training only (None
        when no term is on); in float32 whatever autocast chose for the encoder."""
        if not self.training:
            return None
        terms = []
        if self.config.mmd_weight > 0:
            latent = latent.float()
            terms.append(self.config.mmd_weight * mmd(torch.randn_like(latent), latent))
        if kl is not None:
            terms.append(self.config.kld_weight * kl)
        return sum(terms) if terms else None

    def embed(self, vector: Tensor) -> Tensor:
        return self.embedding(vector)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.conditioner.add("infodiff", InfoDiffConditioner)
