"""The ``cond_mode`` contract: how a residual block of the denoiser applies the condition embedding.

The core registers three (:mod:`protodiff.nn.modes`): ``add`` (a per-block bias, Patronus),
``scale`` (h (1 + c), DiffAE) and ``adagn`` (h (1 + a) + b, InfoDiffusion); a plugin registers its
own (``registry.cond_mode.add("gate", Gate)``) and any conditioner may prefer it
(``preferred_mode = "gate"``) or a config choose it (``model.denoiser.cond_mode: gate``).

A mode is not a component: it has no options, and a config names it by a plain string.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn


class ConditioningMode(ABC):
    """How a residual block combines its hidden state with the time and condition embeddings.

    A block projects the activated time embedding to ``time_width`` x its channels and the
    activated condition embedding to ``cond_width`` x its channels (linear layers the block owns),
    then calls :meth:`apply`; its dropout and second convolution take the result.
    """

    #: The time projection's width in multiples of the block's channels (1: a bias; 2: a scale and a shift).
    time_width: ClassVar[int] = 1
    #: The condition projection's width in multiples of the block's channels.
    cond_width: ClassVar[int] = 1

    @staticmethod
    @abstractmethod
    def apply(h: Tensor, t: Tensor | None, c: Tensor | None, norm: nn.Module) -> Tensor:
        """The block's activation from ``h`` (B, C, H, W), its first convolution's output: the
        projected time ``t`` and condition ``c`` ((B, width x C, 1, 1), or None where the block
        has none) applied around the block's second normalisation ``norm``, then SiLU."""
