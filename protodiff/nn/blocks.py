"""Building blocks of the conditional UNet.

Every residual block receives the *activated* time and condition embeddings (``silu(emb)``),
computed once per forward pass in :class:`~protodiff.nn.unet.UNet` rather than once per block.
How the condition enters a block is the block's ``cond_mode``, a registered
:class:`~protodiff.contracts.cond_mode.ConditioningMode` (the core's ``add``, ``scale`` and
``adagn`` are in :mod:`protodiff.nn.modes`; a plugin may add others).

A block built with ``time_dim=0`` and ``cond_dim=0`` takes neither: GroupNorm-SiLU-Conv twice with
a residual, the block of an image encoder (DiffAE's and InfoDiffusion's encoders have no time input).

Under bf16 autocast, normalisation (:class:`GroupNorm32`) and, on the CPU, attention run in fp32,
as CUDA's autocast runs normalisation: their statistics need the precision, and on the CPU their
bf16 kernels are slower than the fp32 ones (measured, torch 2.14, batch 32 at 32 px: GroupNorm
forward and backward on channels-last bf16 2.5-4x, attention 6x; a ``patronus-shapes`` step 0.78x
with both in fp32; ``benchmarks/train_throughput.py``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from protodiff._registry.manager import registries


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32 whatever the input's dtype (the output stays fp32, as autocast's
    fp32 operations leave it; the next convolution casts it back). A no-op change in fp32."""

    def forward(self, x: Tensor) -> Tensor:
        return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps)


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of the step (as in the Transformer / DDPM) followed by a 2-layer MLP."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(2 * half, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        args = t.float()[:, None] * self.freqs[None, :]
        return self.mlp(torch.cat([args.sin(), args.cos()], dim=1))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv twice with a residual connection, conditioned on time and condition
    (either may be absent: ``time_dim`` or ``cond_dim`` 0) as the conditioning mode ``cond_mode``
    (a name in the ``cond_mode`` registry) says."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        time_dim: int,
        cond_dim: int,
        cond_mode: str,
        groups: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.cond_mode = cond_mode
        self.mode = registries().cond_mode.get(cond_mode)
        self.norm1 = GroupNorm32(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, self.mode.time_width * out_channels) if time_dim > 0 else None
        self.cond_proj = nn.Linear(cond_dim, self.mode.cond_width * out_channels) if cond_dim > 0 else None
        self.norm2 = GroupNorm32(groups, out_channels)
        self.dropout = nn.Dropout2d(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        # The residual branch starts at zero, so every block starts as the identity (as in DDPM).
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, t_act: Tensor | None, c_act: Tensor | None) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        t = self.time_proj(t_act)[:, :, None, None] if self.time_proj is not None and t_act is not None else None
        c = self.cond_proj(c_act)[:, :, None, None] if self.cond_proj is not None and c_act is not None else None
        h = self.mode.apply(h, t, c, self.norm2)
        return self.skip(x) + self.conv2(self.dropout(h))


class SelfAttention(nn.Module):
    """Multi-head self-attention over the spatial positions of a feature map, with a residual."""

    def __init__(self, channels: int, *, heads: int, groups: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm = GroupNorm32(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        qkv = self.qkv(self.norm(x))
        if qkv.device.type == "cpu":  # the CPU's bf16 attention kernel is the slower one
            qkv = qkv.float()
        q, k, v = rearrange(qkv, "b (n h d) y x -> n b h (y x) d", n=3, h=self.heads)
        attended = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(rearrange(attended, "b h (y x) d -> b (h d) y x", y=height, x=width))


class ResAttnBlock(nn.Module):
    """A residual block optionally followed by self-attention (one step of a UNet level)."""

    def __init__(self, res: ResBlock, attention: SelfAttention | None) -> None:
        super().__init__()
        self.res = res
        self.attention = attention

    def forward(self, x: Tensor, t_act: Tensor | None, c_act: Tensor | None) -> Tensor:
        h = self.res(x, t_act, c_act)
        return self.attention(h) if self.attention is not None else h


class Downsample(nn.Module):
    """Strided 3x3 convolution halving the resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour doubling followed by a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
