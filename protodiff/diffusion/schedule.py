"""Noise schedules and the forward process q(x_t | x_0).

All per-step quantities are stored in float64 and cast on use, so that samplers that walk
arbitrary timestep sequences (DDIM with 10 steps, exponential schedules) see the exact
cumulative products rather than float32 round-off of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from protodiff.errors import OptionError
from protodiff.validation import at_least, finite, positive


@dataclass
class ScheduleConfig:
    """The forward process: ``timesteps`` steps of ``schedule`` betas, and what the network predicts.

    Defaults are DDPM's (and Patronus'): 1000 linear betas from 1e-4 to 0.02, epsilon prediction.
    ``cosine`` is Nichol & Dhariwal's schedule (``beta_start``/``beta_end`` unused).

    ``prediction: v`` (Salimans & Ho 2022) trains the network on v = sqrt(a) eps - sqrt(1-a) x0
    instead of eps. Near pure noise an eps-network must reproduce x_t to within sqrt(a) (0.006 at
    t = 999) for x0 to come out right, which a briefly trained network does not: its samples
    drift in overall tone and saturate. A v-network predicts x0 directly there. Samplers take
    either: the loop reads eps_hat and x0_hat from the prediction directly (``eps_and_x0``).
    """

    timesteps: int = 1000
    schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    prediction: Literal["eps", "v"] = "eps"
    #: How training draws t: ``uniform`` (DDPM) or ``logit-normal``, t/T = sigmoid(N(t_mean, t_std))
    #: (Esser et al. 2024), which with ``t_mean`` > 0 trains more on the noisy steps.
    t_sampling: Literal["uniform", "logit-normal"] = "uniform"
    t_mean: float = 0.0
    t_std: float = 1.0
    #: How the loss weighs timesteps: ``uniform`` (DDPM's L_simple) or ``min-snr`` (Hang et al.
    #: 2023), which caps the weight of the nearly clean steps at SNR = ``min_snr_gamma``, where the
    #: network only refines detail, so that their gradients stop dominating the noisy ones.
    loss_weighting: Literal["uniform", "min-snr"] = "uniform"
    min_snr_gamma: float = 5.0

    def __post_init__(self) -> None:
        positive(t_std=self.t_std, min_snr_gamma=self.min_snr_gamma)
        finite(t_mean=self.t_mean)
        at_least(1, timesteps=self.timesteps)
        if self.schedule == "linear" and not 0.0 < self.beta_start <= self.beta_end < 1.0:
            raise ValueError("linear schedule needs 0 < beta_start <= beta_end < 1")


def linear_betas(timesteps: int, beta_start: float, beta_end: float) -> Tensor:
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Betas whose alpha_bar follows cos^2 (Improved DDPM, eq. 17), clipped at ``max_beta``."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    alpha_bar = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


class NoiseSchedule:
    """alpha_bar_t and the conversions between x_t, x_0 and epsilon that every sampler needs."""

    def __init__(self, config: ScheduleConfig | None = None) -> None:
        self.config = config or ScheduleConfig()
        c = self.config
        self.betas = linear_betas(c.timesteps, c.beta_start, c.beta_end) if c.schedule == "linear" else cosine_betas(c.timesteps)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)

    @property
    def num_timesteps(self) -> int:
        return self.config.timesteps

    def check_timestep(self, t: int, option: str = "t") -> int:
        """``t`` if it is a timestep of this schedule, else a one-line :class:`OptionError` naming
        ``option`` (an option such as an explainer's ``t`` can only be checked once the model is known)."""
        if not 0 <= t < self.num_timesteps:
            raise OptionError(f"{option}={t} is not a timestep of this model's schedule (0..{self.num_timesteps - 1})")
        return t

    def alpha_bar(self, t: Tensor | int, like: Tensor) -> Tensor:
        """alpha_bar at step(s) ``t`` shaped to broadcast against ``like``; ``t = -1`` means 1 (clean)."""
        t = torch.as_tensor(t, device=self.alphas_cumprod.device)
        padded = torch.cat([self.alphas_cumprod.new_ones(1), self.alphas_cumprod])
        values = padded[(t + 1).long().cpu()].to(device=like.device, dtype=like.dtype)
        return values.reshape(-1, *([1] * (like.dim() - 1))) if values.dim() else values

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps."""
        a = self.alpha_bar(t, x0)
        return a.sqrt() * x0 + (1 - a).sqrt() * noise

    def predict_x0(self, x_t: Tensor, t: Tensor | int, eps: Tensor) -> Tensor:
        a = self.alpha_bar(t, x_t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def predict_eps(self, x_t: Tensor, t: Tensor | int, x0: Tensor) -> Tensor:
        a = self.alpha_bar(t, x_t)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    def training_target(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        """What the network learns to output for x_t = q_sample(x0, t, noise): eps, or v."""
        if self.config.prediction == "eps":
            return noise
        a = self.alpha_bar(t, x0)
        return a.sqrt() * noise - (1 - a).sqrt() * x0

    def loss_weight(self, t: Tensor) -> Tensor:
        """The weight of each timestep's squared error (``loss_weighting``): 1, or min-SNR-gamma
        expressed for the prediction target, min(SNR, gamma) / SNR for eps and
        min(SNR, gamma) / (SNR + 1) for v (Hang et al. 2023, eq. 8 and appendix)."""
        if self.config.loss_weighting == "uniform":
            return torch.ones(t.shape, dtype=torch.float32, device=t.device)
        a = self.alphas_cumprod.to(t.device)[t]
        snr = a / (1 - a)
        capped = snr.clamp(max=self.config.min_snr_gamma)
        weight = capped / snr if self.config.prediction == "eps" else capped / (snr + 1)
        return weight.float()

    def eps_from_prediction(self, x_t: Tensor, t: Tensor | int, prediction: Tensor) -> Tensor:
        """The eps implied by the network's output (the identity for eps-prediction)."""
        if self.config.prediction == "eps":
            return prediction
        a = self.alpha_bar(t, x_t)
        return a.sqrt() * prediction + (1 - a).sqrt() * x_t

    # -- one integer timestep, Python-float coefficients: what samplers use ----------------------
    def alpha_bar_at(self, t: int) -> float:
        """alpha_bar_t from the float64 table as a Python float (1 for t = -1, clean).

        Multiplying a tensor by a Python float builds nothing on the device and moves nothing to
        it, so a sampler's step never waits for the GPU, and the coefficient keeps float64 until
        the kernel casts it.
        """
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def eps_and_x0(self, x_t: Tensor, t: int, prediction: Tensor, kind: str) -> tuple[Tensor, Tensor]:
        """(eps, x0) implied by a network's ``prediction`` of ``kind`` (``eps`` or ``v``) at (x_t, t).

        For v both come straight from v (Salimans & Ho 2022, sec. 4): x0 = sqrt(a) x_t -
        sqrt(1-a) v and eps = sqrt(a) v + sqrt(1-a) x_t. Neither divides by sqrt(a), which is
        what reading x0 off an eps converted from v does: near t = T that division amplifies the
        float32 rounding of eps by 1/sqrt(a) (x0_hat off by ~1e-3 at t = 999 of a cosine schedule
        instead of ~1e-7). diffusers' schedulers read v the same way (``v_prediction``).
        """
        if kind == "eps":
            return prediction, self.x0_from_eps(x_t, t, prediction)
        a = self.alpha_bar_at(t)
        x0 = torch.add(x_t * a**0.5, prediction, alpha=-((1 - a) ** 0.5))
        eps = torch.add(prediction * a**0.5, x_t, alpha=(1 - a) ** 0.5)
        return eps, x0

    def x0_from_eps(self, x_t: Tensor, t: int, eps: Tensor) -> Tensor:
        """x0 = (x_t - sqrt(1-a) eps) / sqrt(a) at one timestep (x_t itself at t = -1)."""
        a = self.alpha_bar_at(t)
        return torch.add(x_t, eps, alpha=-((1 - a) ** 0.5)).mul_(a**-0.5)

    def eps_from_x0(self, x_t: Tensor, t: int, x0: Tensor) -> Tensor:
        """eps = (x_t - sqrt(a) x0) / sqrt(1-a) at one timestep (t >= 0)."""
        a = self.alpha_bar_at(t)
        return torch.add(x_t, x0, alpha=-(a**0.5)).mul_((1 - a) ** -0.5)
