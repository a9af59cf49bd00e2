"""``latent-ddpm``: a diffusion model over condition vectors, so a conditional model can generate
from nothing: s ~ prior, then x ~ p(x | s).

Published Patronus trains a 1-D UNet on s with T=100 and betas 1e-3..0.2; its UNet drops its skip
connections and its sampler injects fresh noise where eps_hat belongs (docs/reference.md).
Here the denoiser is DiffAE's kind of network (an MLP that re-reads its input at every layer), the
vectors are standardised first (as DiffAE does for z_sem), and sampling reuses the core's
epsilon-parameterised DDPM/DDIM samplers, so the same code paths are tested once for images and
vectors alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from protodiff.contracts.latent_prior import LatentPrior
from protodiff.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, ScheduleConfig, denoising_loss
from protodiff.hookspecs import hookimpl
from protodiff.nn.blocks import TimestepEmbedding
from protodiff.registry import Registries


class SkipMLP(nn.Module):
    """eps_hat(v_t, t): every hidden layer sees [h, v_t] and a per-layer projection of the time embedding."""

    def __init__(self, dim: int, width: int, depth: int) -> None:
        super().__init__()
        self.time = TimestepEmbedding(64, width)
        self.layers = nn.ModuleList(nn.Linear((dim if i == 0 else width) + dim, width) for i in range(depth))
        self.time_proj = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth))
        self.out = nn.Linear(width + dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, v_t: Tensor, t: Tensor) -> Tensor:
        t_act = F.silu(self.time(t))
        h = v_t
        for layer, time_proj, norm in zip(self.layers, self.time_proj, self.norms):
            h = F.silu(norm(layer(torch.cat([h, v_t], dim=1)) + time_proj(t_act)))
        return self.out(torch.cat([h, v_t], dim=1))


class LatentDDPM(LatentPrior):
    """A DDPM on standardised condition vectors (Patronus' latent prior, corrected)."""

    @dataclass
    class Config:
        width: int = 512
        depth: int = 6
        timesteps: int = 100
        beta_start: float = 1e-3
        beta_end: float = 0.2
        epochs: int = 200
        batch_size: int = 128
        lr: float = 1e-4
        #: Sampling steps (null: all ``timesteps``, ancestral as published); fewer uses DDIM.
        sample_steps: int | None = None

        def __post_init__(self) -> None:
            if self.sample_steps is not None and not 1 <= self.sample_steps <= self.timesteps:
                raise ValueError("sample_steps must be between 1 and timesteps")

    presets = {"test": {"width": 32, "depth": 2, "epochs": 3, "batch_size": 16}}

    def __init__(self, config: Config, *, dim: int) -> None:
        super().__init__()
        self.config = config
        self.dim = dim
        self.schedule = NoiseSchedule(ScheduleConfig(config.timesteps, "linear", config.beta_start, config.beta_end))
        self.net = SkipMLP(dim, config.width, config.depth)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def fit(self, vectors: Tensor, *, generator: torch.Generator | None = None, progress: bool = False) -> list[float]:
        """Standardise ``vectors`` and train the denoiser; returns the mean loss of every epoch."""
        vectors = vectors.detach().float().to(self.device)
        self.mean.copy_(vectors.mean(0))
        self.std.copy_(vectors.std(0).clamp(min=1e-6))  # a constant dimension stays constant
        data = (vectors - self.mean) / self.std
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.config.lr)
        generator = generator or torch.Generator().manual_seed(0)
        history = []
        self.train()
        for _ in tqdm(range(self.config.epochs), desc="fitting prior", disable=not progress, leave=False):
            order = torch.randperm(len(data), generator=generator).to(self.device)
            losses = []
            for start in range(0, len(data), self.config.batch_size):
                loss = denoising_loss(self.net, self.schedule, data[order[start : start + self.config.batch_size]], generator)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            history.append(sum(losses) / len(losses))
        self.eval()
        return history

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        steps = self.config.sample_steps
        if steps is None or steps == self.config.timesteps:
            sampler = DDPMSampler(DDPMSampler.Config(steps=self.config.timesteps), schedule=self.schedule)
        else:
            sampler = DDIMSampler(DDIMSampler.Config(steps=steps), schedule=self.schedule)
        noise = torch.randn(n, self.dim, generator=generator).to(self.device)
        return sampler.sample(self.net, noise, generator=generator) * self.std + self.mean


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.latent_prior.add("latent-ddpm", LatentDDPM)
