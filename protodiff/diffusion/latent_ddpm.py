"""``latent-ddpm``: a diffusion model over condition vectors, so a conditional model can generate
from nothing: s ~ prior, then x ~ p(x | s).

Every conditioner that generates from a prior pairs with one: Patronus trains a DDPM on its
prototype activations, DiffAE a DDIM on its semantic code (its "latent DDIM"). One component
serves both, with the options where they differ:

- Published Patronus trains a 1-D UNet on s with T=100 and betas 1e-3..0.2; its UNet drops its
  skip connections and its sampler injects fresh noise where eps_hat belongs (docs/reference.md).
  The default here keeps Patronus' schedule and training numbers and replaces the network by
  DiffAE's kind (an MLP that re-reads its input at every layer).
- DiffAE's latent DDIM (phizaz/diffae ``model/latentnet.py``, ``templates_latent.py``) is that MLP
  10 layers deep and 2048 wide, with the time embedding *scaling* each hidden layer before its
  LayerNorm, trained with an L1 loss on eps under a constant beta of 0.008 over 1000 steps: the
  ``diffae`` preset, which the DiffAE plugin adds (a plugin may give presets to the core's components).

Either way the vectors are standardised first (DiffAE's ``latent_znormalize``) and sampling reuses
the core's epsilon-parameterised DDPM/DDIM samplers, so the same code paths serve images and
vectors alike. ``normalise: whiten`` goes one step further, to the principal axes of the
standardised vectors, for codes that do not fill their space: a semantic encoder whose last level
has fewer channels than the code is wide (DiffAE's CPU presets: 64 channels, 512 dimensions) gives
codes of rank 64, and a diffusion model trained on the 448 directions without variance diverges
when sampling (measured on diffae-shapes: samples with 28x the codes' spread, decoded to noise).
Whitened, those directions are held at zero and get their exact eps, so the network models only
the directions the codes vary in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.diffusion.samplers import DDIMSampler, DDPMSampler
from protodiff.diffusion.schedule import NoiseSchedule, ScheduleConfig
from protodiff.nn.blocks import TimestepEmbedding
from protodiff.validation import at_least, positive

TimeMode = Literal["add", "scale"]
#: Principal directions whose variance is below this fraction of the largest carry no variance
#: (measured on a rank-64 code: its null directions ~1e-15 of it, its smallest real one 3e-6).
RANK_TOLERANCE = 1e-9


class SkipMLP(nn.Module):
    """eps_hat(v_t, t): every hidden layer sees [h, v_t] and a per-layer projection of the time
    embedding, added to it (``add``) or scaling it, h (1 + W t), before the norm (``scale``, DiffAE)."""

    def __init__(self, dim: int, width: int, depth: int, time_mode: TimeMode) -> None:
        super().__init__()
        self.time_mode = time_mode
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
            hidden = layer(torch.cat([h, v_t], dim=1))
            time = time_proj(t_act)
            h = F.silu(norm(hidden + time if self.time_mode == "add" else hidden * (1 + time)))
        return self.out(torch.cat([h, v_t], dim=1))


class LatentDDPM(LatentPrior):
    """A DDPM on standardised condition vectors (Patronus' latent prior, corrected; DiffAE's latent DDIM)."""

    @dataclass
    class Config:
        width: int = 512
        #: Hidden layers (DiffAE counts the output layer too: its 10 layers are depth 9 here).
        depth: int = 6
        timesteps: int = 100
        #: Linear betas from ``beta_start`` to ``beta_end``; equal values give a constant beta (DiffAE's 0.008).
        beta_start: float = 1e-3
        beta_end: float = 0.2
        #: ``mse`` on eps (DDPM, Patronus) or ``l1`` (DiffAE's latent DDIM).
        loss: Literal["mse", "l1"] = "mse"
        #: How the time embedding enters each hidden layer: ``add`` (a bias) or ``scale`` (DiffAE).
        time_mode: TimeMode = "add"
        epochs: int = 200
        batch_size: int = 128
        lr: float = 1e-4
        #: AdamW's weight decay (0.01: PyTorch's default, and DiffAE's latent DDIM setting).
        weight_decay: float = 0.01
        #: Sampling steps (null: all ``timesteps``, ancestral as published); fewer uses DDIM.
        sample_steps: int | None = None
        #: ``standard``: each dimension to zero mean and unit variance. ``whiten``: then to the
        #: principal axes with unit variance, dropping the directions with none (see the module doc).
        normalise: Literal["standard", "whiten"] = "standard"

        def __post_init__(self) -> None:
            at_least(
                1, width=self.width, depth=self.depth, timesteps=self.timesteps, epochs=self.epochs, batch_size=self.batch_size
            )
            positive(lr=self.lr)
            at_least(0, weight_decay=self.weight_decay)
            if not 0.0 < self.beta_start <= self.beta_end < 1.0:
                raise ValueError("betas need 0 < beta_start <= beta_end < 1")
            if self.sample_steps is not None and not 1 <= self.sample_steps <= self.timesteps:
                raise ValueError("sample_steps must be between 1 and timesteps")

    presets = {
        "test": {"width": 32, "depth": 2, "epochs": 3, "batch_size": 16},
    }

    def __init__(self, config: Config, *, dim: int) -> None:
        super().__init__()
        self.config = config
        self.dim = dim
        self.schedule = NoiseSchedule(ScheduleConfig(config.timesteps, "linear", config.beta_start, config.beta_end))
        self.net = SkipMLP(dim, config.width, config.depth, config.time_mode)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        if config.normalise == "whiten":
            #: Columns: principal directions of the standardised vectors; ``scale``: their standard
            #: deviations, 0 for the directions without variance.
            self.register_buffer("axes", torch.eye(dim))
            self.register_buffer("scale", torch.ones(dim))

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def loss(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        """The configured distance between eps and eps_hat at a random step, averaged over the batch.

        Steps and noise are drawn on the generator's device (as the images' objective does), so a
        seeded fit draws the same ones on every device.
        """
        t = torch.randint(0, self.schedule.num_timesteps, (len(batch),), generator=generator, device=generator.device)
        noise = torch.randn(batch.shape, generator=generator, device=generator.device).to(batch.device)
        t = t.to(batch.device)
        error = self._eps(self.schedule.q_sample(batch, t, noise), t) - noise
        kept = self._kept()
        error = error if kept is None else error[:, kept]
        return error.abs().mean() if self.config.loss == "l1" else error.square().mean()

    @property
    def rank(self) -> int:
        """How many directions the prior models (``dim`` unless whitening dropped some)."""
        return int((self.scale > 0).sum()) if self.config.normalise == "whiten" else self.dim

    def _fit_normalisation(self, vectors: Tensor) -> None:
        self.mean.copy_(vectors.mean(0))
        self.std.copy_(vectors.std(0).clamp(min=1e-6))  # a constant dimension stays constant
        if self.config.normalise == "whiten":
            standard = ((vectors - self.mean) / self.std).double()
            variances, axes = torch.linalg.eigh(standard.T @ standard / max(len(standard) - 1, 1))
            variances, axes = variances.flip(0), axes.flip(1)
            kept = variances > RANK_TOLERANCE * variances[0].clamp(min=1e-12)
            self.axes.copy_(axes.float())
            self.scale.copy_(torch.where(kept, variances.clamp(min=0).sqrt(), 0.0).float())

    def _normalised(self, vectors: Tensor) -> Tensor:
        standard = (vectors - self.mean) / self.std
        if self.config.normalise == "standard":
            return standard
        return (standard @ self.axes) / self.scale.clamp(min=1e-12) * (self.scale > 0)

    def _denormalised(self, normalised: Tensor) -> Tensor:
        if self.config.normalise == "whiten":
            normalised = (normalised * self.scale) @ self.axes.T
        return normalised * self.std + self.mean

    def _kept(self) -> Tensor | None:
        """The directions the network models (None: all of them)."""
        return self.scale > 0 if self.rank < self.dim else None

    def _eps(self, v_t: Tensor, t: Tensor) -> Tensor:
        """eps_hat: the network's in the modelled directions; in those whitening dropped (where the
        data is always 0) the exact eps of a zero x0, so the network spends nothing on them."""
        kept = self._kept()
        if kept is None:
            return self.net(v_t, t)
        exact = self.schedule.predict_eps(v_t, t, torch.zeros_like(v_t))
        return torch.where(kept, self.net(v_t * kept, t), exact)

    def fit(self, vectors: Tensor, *, generator: torch.Generator | None = None, progress: bool = False) -> list[float]:
        """Normalise ``vectors`` and train the denoiser; returns the mean loss of every epoch."""
        vectors = vectors.detach().float().to(self.device)
        self._fit_normalisation(vectors)
        data = self._normalised(vectors)
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        generator = generator or torch.Generator().manual_seed(0)
        history = []
        self.train()
        for _ in tqdm(range(self.config.epochs), desc="fitting prior", disable=not progress, leave=False):
            order = torch.randperm(len(data), generator=generator).to(self.device)
            losses = []
            for start in range(0, len(data), self.config.batch_size):
                loss = self.loss(data[order[start : start + self.config.batch_size]], generator)
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
        return self._denormalised(sampler.sample(self._eps, noise, generator=generator))


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.latent_prior.add("latent-ddpm", LatentDDPM)
