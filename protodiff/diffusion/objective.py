"""The training objective: predict the noise added by the forward process (DDPM's L_simple)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from protodiff.diffusion.schedule import NoiseSchedule


def epsilon_loss(
    eps_fn: Callable[[Tensor, Tensor], Tensor],
    schedule: NoiseSchedule,
    x0: Tensor,
    generator: torch.Generator | None = None,
) -> Tensor:
    """E_{t ~ U{0..T-1}, eps ~ N(0, I)} ||eps - eps_fn(x_t, t)||^2, averaged over the batch.

    Timesteps and noise are drawn from ``generator`` (on its own device, then moved) so that a
    seeded run draws the same ones on every device and after a resume.
    """
    gen_device = generator.device if generator is not None else x0.device
    t = torch.randint(0, schedule.num_timesteps, (x0.shape[0],), generator=generator, device=gen_device).to(x0.device)
    noise = torch.randn(x0.shape, generator=generator, device=gen_device, dtype=x0.dtype).to(x0.device)
    return F.mse_loss(eps_fn(schedule.q_sample(x0, t, noise), t), noise)
