"""The levels of a UNet: residual blocks going down with a skip kept at every step, a middle, and
blocks coming back up on the concatenated skips.

The ``unet`` denoiser is stem -> down -> middle -> up -> head. An image encoder shaped like a UNet
is built from the same pieces with no time input (``time_dim=0``): a half UNet (down and middle,
then pooled) or a whole one. So the level structure and its skip bookkeeping exist once, whoever
uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from protodiff.errors import ConfigError
from protodiff.nn.blocks import Downsample, ResAttnBlock, ResBlock, SelfAttention, Upsample
from protodiff.validation import at_least


@dataclass
class UNetShape:
    """The widths, depth and attention of a UNet-shaped network (defaults: the published Patronus UNet)."""

    base_channels: int = 64
    #: Width of each level as a multiple of ``base_channels``; each level after the first halves the resolution.
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    #: Levels (0 = full resolution) whose blocks are followed by self-attention.
    attention_levels: tuple[int, ...] = ()
    attention_heads: int = 4
    norm_groups: int = 8
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if not self.channel_mult:
            raise ValueError("channel_mult must list at least one level")
        at_least(
            1,
            base_channels=self.base_channels,
            channel_mult=self.channel_mult,
            num_res_blocks=self.num_res_blocks,
            attention_heads=self.attention_heads,
            norm_groups=self.norm_groups,
        )
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

    @property
    def downsampling_factor(self) -> int:
        """Input sides must be divisible by this."""
        return 2 ** (len(self.channel_mult) - 1)

    def require_side(self, image_size: int, owner: str) -> None:
        """A one-line error naming ``owner`` unless ``image_size`` halves at every level."""
        if image_size % self.downsampling_factor:
            raise ConfigError(
                f"{owner} halves a {image_size} px image {len(self.channel_mult) - 1} times; use an image "
                f"size divisible by {self.downsampling_factor} or fewer levels"
            )

    @property
    def deepest_channels(self) -> int:
        return self.base_channels * self.channel_mult[-1]


class UpLevel(nn.Module):
    """The blocks of one level of the up path, then the upsampling to the next (none at the top)."""

    def __init__(self, blocks: list[ResAttnBlock], upsample: Upsample | None) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.upsample = upsample


@dataclass(frozen=True)
class UNetLevels:
    """Builds the paths of ``shape``, every residual block conditioned on what the fields say:
    a time embedding of ``time_dim`` and a condition embedding of ``cond_dim`` applied by
    ``cond_mode`` (0: none, as in an encoder)."""

    shape: UNetShape
    time_dim: int = 0
    cond_dim: int = 0
    cond_mode: str = "add"

    def block(self, in_channels: int, out_channels: int, attention: bool) -> ResAttnBlock:
        shape = self.shape
        res = ResBlock(
            in_channels,
            out_channels,
            time_dim=self.time_dim,
            cond_dim=self.cond_dim,
            cond_mode=self.cond_mode,
            groups=shape.norm_groups,
            dropout=shape.dropout,
        )
        attn = SelfAttention(out_channels, heads=shape.attention_heads, groups=shape.norm_groups) if attention else None
        return ResAttnBlock(res, attn)

    def down(self) -> tuple[nn.ModuleList, list[int]]:
        """The down path (it starts from a stem of ``base_channels``), and the width of every skip
        it keeps, the stem's first."""
        shape = self.shape
        layers = nn.ModuleList()
        channels = shape.base_channels
        skips = [channels]
        last = len(shape.channel_mult) - 1
        for level, mult in enumerate(shape.channel_mult):
            for _ in range(shape.num_res_blocks):
                layers.append(self.block(channels, shape.base_channels * mult, level in shape.attention_levels))
                channels = shape.base_channels * mult
                skips.append(channels)
            if level != last:
                layers.append(Downsample(channels))
                skips.append(channels)
        return layers, skips

    def middle(self, attention: bool) -> nn.ModuleList:
        """Two blocks at the deepest level, the first followed by self-attention when ``attention``."""
        channels = self.shape.deepest_channels
        return nn.ModuleList([self.block(channels, channels, attention), self.block(channels, channels, False)])

    def up(self, skips: list[int]) -> nn.ModuleList:
        """The up path: ``num_res_blocks + 1`` blocks per level, each on the concatenation with one
        skip (consumed from the end of ``skips``, a copy of what :meth:`down` returned)."""
        shape = self.shape
        skips = list(skips)
        levels = nn.ModuleList()
        channels = shape.deepest_channels
        for level, mult in reversed(list(enumerate(shape.channel_mult))):
            blocks = []
            for _ in range(shape.num_res_blocks + 1):
                blocks.append(self.block(channels + skips.pop(), shape.base_channels * mult, level in shape.attention_levels))
                channels = shape.base_channels * mult
            levels.append(UpLevel(blocks, Upsample(channels) if level != 0 else None))
        return levels


def run_down(down: nn.ModuleList, h: Tensor, t_act: Tensor | None, c_act: Tensor | None) -> tuple[Tensor, list[Tensor]]:
    """The down path on the stem's output ``h``; returns the deepest features and every skip."""
    skips = [h]
    for layer in down:
        h = layer(h) if isinstance(layer, Downsample) else layer(h, t_act, c_act)
        skips.append(h)
    return h, skips


def run_middle(middle: nn.ModuleList, h: Tensor, t_act: Tensor | None, c_act: Tensor | None) -> Tensor:
    for layer in middle:
        h = layer(h, t_act, c_act)
    return h


def run_up(up: nn.ModuleList, h: Tensor, skips: list[Tensor], t_act: Tensor | None, c_act: Tensor | None) -> Tensor:
    """The up path from the deepest features ``h``, consuming ``skips`` from the end."""
    for level in up:
        for layer in level.blocks:
            h = layer(torch.cat([h, skips.pop()], dim=1), t_act, c_act)
        if level.upsample is not None:
            h = level.upsample(h)
    return h
