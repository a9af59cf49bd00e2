"""The optimiser, its learning-rate schedule and the EMA of the weights."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from protodiff.errors import ProtodiffError
from protodiff.experiment import TrainConfig


def total_steps(train: TrainConfig, dataset_size: int) -> int:
    return train.steps if train.steps is not None else train.epochs * (dataset_size // train.batch_size)


def parameter_groups(model: nn.Module, train: TrainConfig) -> list[dict[str, object]]:
    """Optimizer groups by learning rate: ``train.lr`` times the multiplier of the longest
    ``train.lr_multipliers`` prefix a parameter's name starts with (1 if none)."""
    prefixes = sorted(train.lr_multipliers, key=len, reverse=True)
    unknown = [p for p in prefixes if not any(n.startswith(p) for n, _ in model.named_parameters())]
    if unknown:
        raise ProtodiffError(
            f"train.lr_multipliers: no parameter name starts with {unknown[0]!r}; prefixes are module paths "
            "such as 'conditioner', 'conditioner.prototype_layer' or 'denoiser'"
        )
    groups: dict[float, list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        match = next((p for p in prefixes if name.startswith(p)), None)
        groups.setdefault(train.lr_multipliers[match] if match else 1.0, []).append(param)
    return [{"params": params, "lr": train.lr * factor} for factor, params in groups.items()]


def build_optimizer(model: nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups`, with its multi-tensor (``foreach``) update: one kernel
    per operation over all parameters instead of one per parameter."""
    return torch.optim.AdamW(
        parameter_groups(model, train), lr=train.lr, betas=train.betas, weight_decay=train.weight_decay, foreach=True
    )


def lr_lambda(train: TrainConfig, total: int) -> Callable[[int], float]:
    """Linear warm-up, then constant or cosine decay to zero."""

    def factor(step: int) -> float:
        if step < train.warmup_steps:
            return (step + 1) / train.warmup_steps
        if train.lr_schedule == "constant":
            return 1.0
        progress = (step - train.warmup_steps) / max(1, total - train.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def ema_with_warmup(decay: float) -> Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor], None]:
    """An AveragedModel update whose decay ramps up as min(decay, (1 + n) / (10 + n)).

    A fixed decay of 0.999 averages over the last ~1000 updates, so after a 1000-step run the
    average still weighs the first, untrained weights; the ramp (as in diffusers' EMAModel) keeps
    the average to the recent past early on and reaches ``decay`` after ~10 / (1 - decay) updates.
    Non-float tensors (flags, counters) follow the model.
    """

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor) -> None:
        n = int(num_averaged)
        weight = 1.0 - min(decay, (1 + n) / (10 + n))
        floats = [(mean, value) for mean, value in zip(averaged, current) if mean.is_floating_point()]
        if floats:
            means, values = zip(*floats)
            torch._foreach_lerp_(list(means), list(values), weight)
        for mean, value in zip(averaged, current):
            if not mean.is_floating_point():
                mean.copy_(value)

    return update
