"""The core's single-step samplers, ``ddim`` and ``ddpm``: each only says how to step between two
timesteps (the loop, the per-step callback and inversion live in :mod:`protodiff.contracts.sampler`;
the multistep ``dpm-solver++`` in :mod:`protodiff.diffusion.dpm_solver`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.sampler import Sampler, randn
from protodiff.validation import at_least


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021, eq. 12): eta=0 is deterministic, eta=1 matches DDPM's posterior variance."""

    @dataclass
    class Config(Sampler.Config):
        eta: float = 0.0

        def __post_init__(self) -> None:
            super().__post_init__()
            at_least(0, eta=self.eta)

    def step(self, x_t: Tensor, t: int, t_next: int, eps: Tensor, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.config.eta == 0 or t_next < 0:
            return self.ddim_step(x_t, t, t_next, eps, x0)
        a_t, a_next = self.schedule.alpha_bar_at(t), self.schedule.alpha_bar_at(t_next)
        sigma = self.config.eta * ((1 - a_next) / (1 - a_t) * (1 - a_t / a_next)) ** 0.5
        x_next = (x0 * a_next**0.5).add_(eps, alpha=max(1 - a_next - sigma**2, 0.0) ** 0.5)
        return x_next.add_(randn(x_t.shape, generator, x_t), alpha=sigma)


class DDPMSampler(Sampler):
    """Ancestral sampling (Ho et al. 2020) on any timestep subsequence.

    Between two visited steps the effective beta is ``1 - alpha_bar_t / alpha_bar_prev``; the
    variance is the posterior's (``small``) or that beta itself (``large``).
    """

    @dataclass
    class Config(Sampler.Config):
        steps: int = 1000
        variance: Literal["small", "large"] = "small"

    def step(self, x_t: Tensor, t: int, t_next: int, eps: Tensor, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        a_t, a_prev = self.schedule.alpha_bar_at(t), self.schedule.alpha_bar_at(t_next)
        beta = 1 - a_t / a_prev
        # the posterior mean q(x_prev | x_t, x0): Ho et al. 2020, eq. 7
        mean = (x0 * (a_prev**0.5 * beta / (1 - a_t))).add_(x_t, alpha=(1 - beta) ** 0.5 * (1 - a_prev) / (1 - a_t))
        if t_next < 0:
            return mean
        variance = beta * (1 - a_prev) / (1 - a_t) if self.config.variance == "small" else beta
        return mean.add_(randn(x_t.shape, generator, x_t), alpha=variance**0.5)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.sampler.add("ddpm", DDPMSampler)
    registry.sampler.add("ddim", DDIMSampler)
