"""The ``diffae`` conditioner: a 512-d semantic code z_sem of the clean image scales every block of
the denoiser (Preechakul et al., "Diffusion autoencoders", CVPR 2022).

x0 -> half-UNet semantic encoder -> z_sem -> each UNet block computes W silu(z_sem) and multiplies
its normalised features by (1 + that), after the time embedding's scale and shift (``scale`` mode).
z_sem itself is the embedding (DiffAE's ``TimeStyleSeperateEmbed`` passes it through unchanged);
every block applies its own SiLU and linear layer. The encoder is trained with the denoiser by the
denoising loss alone. The rest of an image, its stochastic subcode, is the DDIM inversion of x0
given z_sem (``model.invert``); new codes come from ``latent-ddpm`` fitted on normalised z_sem.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.conditioner import Condition, Conditioner
from protodiff.nn.levels import UNetShape
from protodiff.validation import at_least
from protodiff_diffae.encoder import HalfUNetEncoder


def published_encoder() -> UNetShape:
    """DiffAE's 64 px semantic encoder (phizaz/diffae ``templates.py`` ``autoenc_base``): base 64
    channels, multipliers 1,2,4,8,8 (``net_enc_channel_mult``), two blocks per level, attention
    at 16 px with one head, GroupNorm with 32 groups, dropout 0.1 (``config.py``)."""
    return UNetShape(channel_mult=(1, 2, 4, 8, 8), attention_levels=(2,), attention_heads=1, norm_groups=32)


class DiffAEConditioner(Conditioner):
    """z_sem, DiffAE's semantic code, as the condition; one ``dim_NN`` name per dimension."""

    preferred_mode = "scale"
    default_prior = "latent-ddpm"

    @dataclass
    class Config:
        #: Width of z_sem (DiffAE: 512, ``enc_out_channels``); it is also the embedding's width.
        dim: int = 512
        #: The semantic encoder's half UNet (its levels, widths and attention).
        encoder: UNetShape = field(default_factory=published_encoder)

        def __post_init__(self) -> None:
            at_least(1, dim=self.dim)

    presets = {
        "test": {
            "dim": 8,
            "encoder": {
                "base_channels": 8,
                "channel_mult": (1, 2),
                "num_res_blocks": 1,
                "attention_levels": (1,),
                "attention_heads": 1,
                "norm_groups": 4,
                "dropout": 0.0,
            },
        }
    }

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.encoder = HalfUNetEncoder(config.encoder, in_channels=in_channels, image_size=image_size, dim=config.dim)
        self.dim = config.dim
        self.embed_dim = config.dim

    def encode(self, x0: Tensor) -> Condition:
        return Condition(self.encoder(x0), self.names)

    def embed(self, vector: Tensor) -> Tensor:
        return vector


#: DiffAE's latent DDIM as options of the core's ``latent-ddpm`` prior (its preset ``diffae``):
#: phizaz/diffae templates_latent.py (latent_diffusion_config, latent_mlp_2048_norm_10layers,
#: adamw_weight_decay, latent_beta_scheduler 'const0.008', LossType.l1, latent_T_eval 20) and
#: config.py (lr 1e-4, T 1000); batch 512 as celeba64d2c_autoenc_latent.
LATENT_DDIM = {
    "width": 2048, "depth": 9, "timesteps": 1000, "beta_start": 0.008, "beta_end": 0.008,
    "loss": "l1", "time_mode": "scale", "batch_size": 512, "lr": 1e-4, "weight_decay": 0.01,
    "sample_steps": 20,
}  # fmt: skip


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.conditioner.add("diffae", DiffAEConditioner)
    registry.latent_prior.add_preset("latent-ddpm", "diffae", LATENT_DDIM)
