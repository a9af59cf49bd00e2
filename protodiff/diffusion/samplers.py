"""The core's samplers, ``ddim`` and ``ddpm``: each only says how to step between two timesteps
(the loop, the per-step callback and DDIM inversion live in :mod:`protodiff.contracts.sampler`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from protodiff.contracts.sampler import Sampler, randn
from protodiff.hookspecs import hookimpl
from protodiff.registry import Registries


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021): eta=0 is deterministic, eta=1 matches DDPM's posterior variance."""

    @dataclass
    class Config(Sampler.Config):
        eta: float = 0.0

        def __post_init__(self) -> None:
            if self.eta < 0:
                raise ValueError("eta must be >= 0")

    def step(
        self, x_t: Tensor, t: int, t_prev: int, eps: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        x0, eps = self.x0_and_eps(x_t, t, eps)
        a_t, a_prev = self.schedule.alpha_bar(t, x_t), self.schedule.alpha_bar(t_prev, x_t)
        sigma = self.config.eta * ((1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)).sqrt()
        x_prev = a_prev.sqrt() * x0 + (1 - a_prev - sigma**2).clamp(min=0).sqrt() * eps
        if self.config.eta > 0 and t_prev >= 0:
            x_prev = x_prev + sigma * randn(x_t.shape, generator, x_t)
        return x_prev, x0


class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020) on any timestep subsequence.

    Between two visited steps the effective beta is ``1 - alpha_bar_t / alpha_bar_prev``; the
    variance is the posterior's (``small``) or that beta itself (``large``).
    """

    @dataclass
    class Config(Sampler.Config):
        steps: int = 1000
        variance: Literal["small", "large"] = "small"

    def step(
        self, x_t: Tensor, t: int, t_prev: int, eps: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        x0, eps = self.x0_and_eps(x_t, t, eps)
        a_t, a_prev = self.schedule.alpha_bar(t, x_t), self.schedule.alpha_bar(t_prev, x_t)
        beta = 1 - a_t / a_prev
        mean = (a_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - a_prev) * x_t) / (1 - a_t)
        if t_prev < 0:
            return mean, x0
        variance = beta * (1 - a_prev) / (1 - a_t) if self.config.variance == "small" else beta
        return mean + variance.sqrt() * randn(x_t.shape, generator, x_t), x0


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.sampler.add("ddpm", DDPMSampler)
    registry.sampler.add("ddim", DDIMSampler)
