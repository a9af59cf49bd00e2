"""The conditional UNet (denoiser ``unet``).

The default configuration is the one Patronus publishes for every dataset (base 64 channels,
multipliers 1,2,4,4, two residual blocks per level, GroupNorm with 8 groups, dropout 0.1,
4-head attention only in the first bottleneck block; see docs/reference.md). The ``tiny``
preset is a CPU-sized model with the same structure.

Layout: stem conv -> per level ``num_res_blocks`` blocks (+ downsample) -> two bottleneck blocks
(the first with attention) -> per level ``num_res_blocks + 1`` blocks on the concatenated skip
(+ upsample) -> GroupNorm-SiLU-conv head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protodiff.contracts.conditioner import CondMode
from protodiff.contracts.denoiser import Denoiser
from protodiff.hookspecs import hookimpl
from protodiff.nn.blocks import Downsample, ResAttnBlock, ResBlock, SelfAttention, TimestepEmbedding, Upsample
from protodiff.registry import Registries


class _UpLevel(nn.Module):
    def __init__(self, blocks: list[ResAttnBlock], upsample: Upsample | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = upsample


class UNet(Denoiser):
    """A DDPM-style UNet whose residual blocks take a condition embedding (see ``cond_mode``)."""

    @dataclass
    class Config:
        base_channels: int = 64
        channel_mult: tuple[int, ...] = (1, 2, 4, 4)
        num_res_blocks: int = 2
        #: Levels (0 = full resolution) whose blocks are followed by self-attention.
        attention_levels: tuple[int, ...] = ()
        #: Self-attention in the first bottleneck block (Patronus, DDPM).
        bottleneck_attention: bool = True
        attention_heads: int = 4
        norm_groups: int = 8
        dropout: float = 0.1
        #: The time embedding is ``time_embed_mult * base_channels`` wide.
        time_embed_mult: int = 4
        #: Override the conditioner's preferred mode (``add``, ``scale``, ``adagn``).
        cond_mode: CondMode | None = None
        #: Run convolutions in NHWC layout, which oneDNN (CPU) and cuDNN (tensor cores) run faster.
        channels_last: bool = True

        def __post_init__(self) -> None:
            if not self.channel_mult:
                raise ValueError("channel_mult must list at least one level")
            if self.num_res_blocks < 1:
                raise ValueError("num_res_blocks must be at least 1")
            for level in self.attention_levels:
                if not 0 <= level < len(self.channel_mult):
                    raise ValueError(f"attention_levels: level {level} outside 0..{len(self.channel_mult) - 1}")
            for mult in self.channel_mult:
                width = self.base_channels * mult
                if width % self.norm_groups:
                    raise ValueError(f"{width} channels are not divisible into norm_groups={self.norm_groups}")
                if width % self.attention_heads:
                    raise ValueError(f"{width} channels are not divisible into attention_heads={self.attention_heads}")
            if not 0.0 <= self.dropout < 1.0:
                raise ValueError("dropout must be in [0, 1)")

    presets = {
        "paper": {},
        "tiny": {"base_channels": 32, "channel_mult": (1, 2, 2), "num_res_blocks": 1, "dropout": 0.0},
        #: The smallest UNet with every part (for conformance tests).
        "test": {"base_channels": 16, "channel_mult": (1, 2), "num_res_blocks": 1, "dropout": 0.0},
    }

    def __init__(self, config: Config, *, in_channels: int, cond_dim: int, cond_mode: CondMode) -> None:
        super().__init__()
        self.config = config
        mode: CondMode = config.cond_mode or cond_mode
        base, groups = config.base_channels, config.norm_groups
        time_dim = base * config.time_embed_mult
        self.in_channels = in_channels
        self.time_embed = TimestepEmbedding(base, time_dim)

        def block(cin: int, cout: int, attention: bool) -> ResAttnBlock:
            res = ResBlock(
                cin, cout, time_dim=time_dim, cond_dim=cond_dim, cond_mode=mode, groups=groups, dropout=config.dropout
            )
            attn = SelfAttention(cout, heads=config.attention_heads, groups=groups) if attention else None
            return ResAttnBlock(res, attn)

        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)
        self.down = nn.ModuleList()
        skip_channels = [base]
        channels = base
        last = len(config.channel_mult) - 1
        for level, mult in enumerate(config.channel_mult):
            for _ in range(config.num_res_blocks):
                self.down.append(block(channels, base * mult, level in config.attention_levels))
                channels = base * mult
                skip_channels.append(channels)
            if level != last:
                self.down.append(Downsample(channels))
                skip_channels.append(channels)

        self.mid = nn.ModuleList([block(channels, channels, config.bottleneck_attention), block(channels, channels, False)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(config.channel_mult))):
            blocks = []
            for _ in range(config.num_res_blocks + 1):
                blocks.append(block(channels + skip_channels.pop(), base * mult, level in config.attention_levels))
                channels = base * mult
            self.up.append(_UpLevel(blocks, Upsample(channels) if level != 0 else None))

        self.head = nn.Sequential(nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, in_channels, 3, padding=1))
        if config.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def downsampling_factor(self) -> int:
        """Input sides must be divisible by this."""
        return 2 ** (len(self.config.channel_mult) - 1)

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

        h = self.stem(x_t)
        skips = [h]
        for layer in self.down:
            h = layer(h) if isinstance(layer, Downsample) else layer(h, t_act, c_act)
            skips.append(h)
        for layer in self.mid:
            h = layer(h, t_act, c_act)
        for level in self.up:
            for layer in level.blocks:
                h = layer(torch.cat([h, skips.pop()], dim=1), t_act, c_act)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.head(h).contiguous()


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.denoiser.add("unet", UNet)
