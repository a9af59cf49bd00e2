"""``dpm-solver++``: the multistep DPM-Solver++ of Lu et al. 2022 (arXiv 2211.01095).

The probability-flow ODE written in lambda = log(alpha / sigma) (alpha = sqrt(alpha_bar),
sigma = sqrt(1 - alpha_bar)) has the exact solution

    x_t = (sigma_t / sigma_s) x_s + sigma_t * integral_{lambda_s}^{lambda_t} e^lambda x0_hat(x_lambda) dlambda

(DPM-Solver++, sec. 4.1). Holding x0_hat constant over a step gives DDIM; extrapolating it
linearly (quadratically) from the estimates of the previous one (two) steps gives the second
(third) order multistep solver, DPM-Solver++(2M) (Algorithm 2) and (3M), at one denoiser call per
step. The update rules and their details are those of diffusers' ``DPMSolverMultistepScheduler``
with its defaults (``algorithm_type="dpmsolver++"``, ``solver_type="midpoint"``,
``lower_order_final=True``, ``final_sigmas_type="zero"``), and tests/test_diffusers_parity.py
checks them against it; the coefficients come from protodiff's float64 table rather than
diffusers' float32 one. The timesteps are by default uniform in lambda (diffusers'
``use_lu_lambdas=True``), or diffusers' default ``linspace`` spacing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.sampler import Sampler, StepFn
from protodiff.errors import OptionError

#: Walks shorter than this end in lower-order steps: the last one first order, the one before at
#: most second (diffusers' ``lower_order_final``, which it applies below 15 steps for stability).
LOWER_ORDER_FINAL_BELOW = 15


class DPMSolverPlusPlus(Sampler):
    """DPM-Solver++(2M) or (3M): multistep, one denoiser call per step, deterministic.

    Inversion walks the same solver up the timesteps (diffusers'
    ``DPMSolverMultistepInverseScheduler``), evaluating the denoiser at each point's own timestep:
    with an exact denoiser its round trip is 30-50x closer than DDIM's at 50 steps (docs/reference.md).
    """

    invert_at = "current"

    @dataclass
    class Config(Sampler.Config):
        steps: int = 20
        #: 2: DPM-Solver++(2M), the paper's and diffusers' default; 3: the third-order multistep;
        #: 1: the first-order solver, which is DDIM.
        order: Literal[1, 2, 3] = 2
        #: ``logsnr``: timesteps uniform in lambda from T-1 to 0 (DPM-Solver's ``logSNR`` skip
        #: type, recommended there for low-resolution images; diffusers' ``use_lu_lambdas``);
        #: ``linspace``: uniform in t, t = 0 left out (diffusers' default). On the Patronus shapes
        #: model logsnr's 20 steps land 5x closer to DDIM-1000's images (docs/reference.md). With a
        #: cosine schedule (its last beta clipped) logsnr crowds the steps near T: use linspace.
        spacing: Literal["logsnr", "linspace"] = "logsnr"

    def timesteps(self, steps: int | None = None) -> list[int]:
        """``steps`` descending timesteps as ``spacing`` says (rounding's repeats dropped); the last
        step goes from the smallest to the clean image."""
        n = steps or self.config.steps
        last = self.schedule.num_timesteps
        if not 1 <= n <= last:
            raise OptionError(f"sampler steps must be between 1 and {last} (the schedule's timesteps), got {n}")
        if self.config.spacing == "linspace":  # round(linspace(0, T-1, n + 1)) from the top, t = 0 left out
            points = np.linspace(0, last - 1, n + 1).round()[::-1][:-1]
        else:  # uniform in log sigma = -lambda, mapped back to t by linear interpolation of the table
            a = self.schedule.alphas_cumprod.numpy()
            log_sigma = 0.5 * np.log((1 - a) / a)
            points = np.interp(np.linspace(log_sigma[-1], log_sigma[0], n), log_sigma, np.arange(last)).round()
        return list(dict.fromkeys(points.astype(np.int64).tolist()))

    def step(self, x_t: Tensor, t: int, t_next: int, eps: Tensor, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        """A first-order step (DDIM): what a walk's first step is. Walks go through :meth:`walk`."""
        return self.ddim_step(x_t, t, t_next, eps, x0)

    def walk(self, timesteps: Sequence[int]) -> StepFn:
        """A step function remembering this walk's earlier x0 estimates (at most ``order - 1``)."""
        total = len(timesteps)
        earlier: list[tuple[float, Tensor]] = []  # (lambda, x0_hat) of earlier steps, newest last
        index = -1

        def step(x_t: Tensor, t: int, t_next: int, eps: Tensor, x0: Tensor, generator: torch.Generator | None) -> Tensor:
            nonlocal index
            index += 1
            order = self._order(index, total, t_next, len(earlier))
            x_next = self.ddim_step(x_t, t, t_next, eps, x0)
            if order > 1:
                x_next.add_(self._correction(t, t_next, x0, earlier[1 - order :]))
            if t >= 0:  # the clean start of an inversion has no lambda
                earlier.append((self._lambda(t), x0))
                if len(earlier) >= self.config.order:
                    earlier.pop(0)
            return x_next

        return step

    def _order(self, index: int, total: int, t_next: int, available: int) -> int:
        """The order of step ``index`` of ``total`` with ``available`` earlier estimates
        (diffusers' ``lower_order_final`` with ``final_sigmas_type="zero"``)."""
        if index == total - 1 and (t_next < 0 or total < LOWER_ORDER_FINAL_BELOW):
            return 1  # the step to the clean image (sigma = 0) is always first order
        order = min(self.config.order, 1 + available)
        if index == total - 2 and total < LOWER_ORDER_FINAL_BELOW:
            return min(order, 2)
        return order

    def inverse_walk(self, timesteps: Sequence[int]) -> StepFn:
        """The multistep solver walking up the timesteps (its update holds in either direction)."""
        return self.walk(timesteps)

    def _lambda(self, t: int) -> float:
        a = self.schedule.alpha_bar_at(t)
        return 0.5 * math.log(a / (1 - a))

    def _correction(self, t: int, t_next: int, m0: Tensor, earlier: list[tuple[float, Tensor]]) -> Tensor:
        """What the second- (third-) order update from t to t_next adds to the first-order one,
        from ``m0`` (the x0 estimate at t) and the earlier estimates (diffusers'
        ``multistep_dpm_solver_second_order_update`` / ``..._third_order_update``, ``dpmsolver++``)."""
        alpha_t = self.schedule.alpha_bar_at(t_next) ** 0.5
        lambda_s = self._lambda(t)
        h = self._lambda(t_next) - lambda_s
        phi = math.expm1(-h)  # e^{-h} - 1
        lambda_1, m1 = earlier[-1]
        r0 = (lambda_s - lambda_1) / h
        d1_0 = torch.sub(m0, m1).mul_(1 / r0)
        if len(earlier) == 1:  # DPM-Solver++(2M), Algorithm 2: D = m0 + (m0 - m1) / (2 r0)
            return d1_0.mul_(-0.5 * alpha_t * phi)
        lambda_2, m2 = earlier[-2]
        r1 = (lambda_1 - lambda_2) / h
        d1_1 = torch.sub(m1, m2).mul_(1 / r1)
        d2 = torch.sub(d1_0, d1_1).mul_(1 / (r0 + r1))
        d1 = torch.add(d1_0, d2, alpha=r0)
        return d1.mul_(alpha_t * (phi / h + 1)).add_(d2, alpha=-alpha_t * ((phi + h) / h**2 - 0.5))


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.sampler.add("dpm-solver++", DPMSolverPlusPlus)
