"""The training objective: DDPM's L_simple, on eps or on v as the schedule's config says."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from protodiff.diffusion.schedule import NoiseSchedule


def training_timesteps(schedule: NoiseSchedule, n: int, generator: torch.Generator | None, device) -> Tensor:
    """``n`` training timesteps drawn as the schedule's ``t_sampling`` says."""
    c = schedule.config
    if c.t_sampling == "uniform":
        return torch.randint(0, schedule.num_timesteps, (n,), generator=generator, device=device)
    u = torch.sigmoid(c.t_mean + c.t_std * torch.randn(n, generator=generator, device=device))
    return (u * schedule.num_timesteps).long().clamp(max=schedule.num_timesteps - 1)


def denoising_loss(
    net_fn: Callable[[Tensor, Tensor], Tensor],
    schedule: NoiseSchedule,
    x0: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """E_{t ~ U{0..T-1}, eps ~ N(0, I)} w_t ||target - net_fn(x_t, t)||^2, averaged over the batch,
    where the target is eps (or v) and w_t the schedule's loss weight (1 unless ``loss_weighting``
    says otherwise; see :class:`~protodiff.diffusion.schedule.ScheduleConfig`).

    Timesteps and noise are drawn from ``generator`` (on its own device, then moved) so that a
    seeded run draws the same ones on every device and after a resume. The error is taken in
    fp32 whatever precision the network ran in.
    """
    gen_device = generator.device if generator is not None else x0.device
    t = training_timesteps(schedule, x0.shape[0], generator, gen_device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    prediction = net_fn(schedule.q_sample(x0, t, noise), t).float()
    target = schedule.training_target(x0, noise, t).float()
    if schedule.config.loss_weighting == "uniform":
        return F.mse_loss(prediction, target)
    per_image = F.mse_loss(prediction, target, reduction="none").flatten(1).mean(1)
    return (per_image * schedule.loss_weight(t)).mean()
