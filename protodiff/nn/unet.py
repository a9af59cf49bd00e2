"""The conditional UNet (denoiser ``unet``).

The default configuration is the one Patronus publishes for every dataset (base 64 channels,
multipliers 1,2,4,4, two residual blocks per level, GroupNorm with 8 groups, dropout 0.1,
4-head attention only in the first bottleneck block; see docs/reference.md). The ``tiny``
preset is a CPU-sized model with the same structure.

Layout: stem conv -> per level ``num_res_blocks`` blocks (+ downsample) -> two bottleneck blocks
(the first with attention) -> per level ``num_res_blocks + 1`` blocks on the concatenated skip
(+ upsample) -> GroupNorm-SiLU-conv head; the paths are :mod:`protodiff.nn.levels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.denoiser import Denoiser
from protodiff.nn.blocks import GroupNorm32, TimestepEmbedding
from protodiff.nn.levels import UNetLevels, UNetShape, run_down, run_middle, run_up
from protodiff.validation import at_least


class UNet(Denoiser):
    """A DDPM-style UNet whose residual blocks take a condition embedding (see ``cond_mode``)."""

    @dataclass
    class Config(UNetShape):
        #: Self-attention in the first bottleneck block (Patronus, DDPM).
        bottleneck_attention: bool = True
        #: The time embedding is ``time_embed_mult * base_channels`` wide.
        time_embed_mult: int = 4
        #: Override the conditioner's preferred mode: a registered conditioning mode (the core's
        #: ``add``, ``scale``, ``adagn``, or a plugin's; ``protodiff plugins`` lists them).
        cond_mode: str | None = None
        #: Run convolutions in NHWC layout, which oneDNN (CPU) and cuDNN (tensor cores) run faster.
        channels_last: bool = True

        def __post_init__(self) -> None:
            super().__post_init__()
            at_least(1, time_embed_mult=self.time_embed_mult)

    presets = {
        "paper": {},
        "tiny": {"base_channels": 32, "channel_mult": (1, 2, 2), "num_res_blocks": 1, "dropout": 0.0},
        #: The smallest UNet with every part (for conformance tests).
        "test": {"base_channels": 16, "channel_mult": (1, 2), "num_res_blocks": 1, "dropout": 0.0},
    }

    def __init__(self, config: Config, *, in_channels: int, cond_dim: int, cond_mode: str) -> None:
        super().__init__()
        self.config = config
        base = config.base_channels
        time_dim = base * config.time_embed_mult
        self.in_channels = in_channels
        self.time_embed = TimestepEmbedding(base, time_dim)
        levels = UNetLevels(config, time_dim=time_dim, cond_dim=cond_dim, cond_mode=config.cond_mode or cond_mode)
        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)
        self.down, skips = levels.down()
        self.mid = levels.middle(config.bottleneck_attention)
        self.up = levels.up(skips)
        self.head = nn.Sequential(
            GroupNorm32(config.norm_groups, base * config.channel_mult[0]),
            nn.SiLU(),
            nn.Conv2d(base * config.channel_mult[0], in_channels, 3, padding=1),
        )
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def downsampling_factor(self) -> int:
        """Input sides must be divisible by this."""
        return self.config.downsampling_factor

    def forward(self, x_t: Tensor, t: Tensor, cond_emb: Tensor | None) -> Tensor:
        if x_t.shape[-1] % self.downsampling_factor or x_t.shape[-2] % self.downsampling_factor:
            raise ValueError(
                f"UNet with {len(self.config.channel_mult)} levels needs image sides divisible by "
                f"{self.downsampling_factor}, got {tuple(x_t.shape[-2:])}"
            )
        if self.config.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        t_act = F.silu(self.time_embed(t))
        c_act = F.silu(cond_emb) if cond_emb is not None else None
        h, skips = run_down(self.down, self.stem(x_t), t_act, c_act)
        h = run_middle(self.mid, h, t_act, c_act)
        return self.head(run_up(self.up, h, skips, t_act, c_act)).contiguous()


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.denoiser.add("unet", UNet)
