"""The core's conditioning modes: how each residual block of the ``unet`` applies the condition.

``add``   (Patronus)       h = silu(GN(h + W_t silu(t) + W_c silu(c)))           -- additive bias
``scale`` (DiffAE)         h = silu(GN(h)(1 + s_t) + b_t) scaled by (1 + W_c silu(c))  -- scale only
``adagn`` (InfoDiffusion)  h = silu((GN(h)(1 + s_t) + b_t)(1 + s_c) + b_c)       -- scale and shift

Each is a :class:`~protodiff.contracts.cond_mode.ConditioningMode` in the ``cond_mode`` registry; a
plugin adds its own the same way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.cond_mode import ConditioningMode


class AddBias(ConditioningMode):
    """The time and condition projections added to the hidden state as one bias, before the norm."""

    @staticmethod
    def apply(h: Tensor, t: Tensor | None, c: Tensor | None, norm: nn.Module) -> Tensor:
        bias = t if c is None else c if t is None else t + c
        return F.silu(norm(h if bias is None else h + bias))


def _time_scale_shift(h: Tensor, t: Tensor | None) -> Tensor:
    if t is None:
        return h
    t_scale, t_shift = t.chunk(2, dim=1)
    return torch.addcmul(t_shift, h, 1 + t_scale)


class Scale(ConditioningMode):
    """The time embedding scales and shifts the normalised state; the condition scales it."""

    time_width = 2

    @staticmethod
    def apply(h: Tensor, t: Tensor | None, c: Tensor | None, norm: nn.Module) -> Tensor:
        h = _time_scale_shift(norm(h), t)
        return F.silu(h if c is None else h * (1 + c))


class AdaGN(ConditioningMode):
    """The time embedding, then the condition, each scales and shifts the normalised state."""

    time_width = 2
    cond_width = 2

    @staticmethod
    def apply(h: Tensor, t: Tensor | None, c: Tensor | None, norm: nn.Module) -> Tensor:
        h = _time_scale_shift(norm(h), t)
        if c is not None:
            c_scale, c_shift = c.chunk(2, dim=1)
            h = torch.addcmul(c_shift, h, 1 + c_scale)
        return F.silu(h)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.cond_mode.add("add", AddBias)
    registry.cond_mode.add("scale", Scale)
    registry.cond_mode.add("adagn", AdaGN)
