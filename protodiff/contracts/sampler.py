"""The ``sampler`` contract: walk the reverse process (or invert it), calling back at every step.

A sampler walks a descending sequence of timesteps (``timesteps``), and at each one asks an
``eps_fn(x_t, t)`` for the noise estimate and takes one ``step``. After every step it calls
``callback(StepInfo)`` with ``(t, x_t, eps_hat, x0_hat)``: every analysis tool is written against
this hook instead of copying the loop.

Samplers never see a model or a condition: :class:`~protodiff.model.ConditionedDiffusion` binds
both into ``eps_fn``. A new sampler therefore only decides *which* timesteps to visit
(``timesteps``) and *how* to move between two of them (``step``); the loop, the callback and DDIM
inversion are written once, here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor
from tqdm.auto import tqdm

from protodiff.component import Component

if TYPE_CHECKING:
    from protodiff.diffusion.schedule import NoiseSchedule

#: ``eps_fn(x_t, t) -> eps_hat`` where ``t`` is a (B,) long tensor of timesteps.
EpsFn = Callable[[Tensor, Tensor], Tensor]


@dataclass
class StepInfo:
    """What a sampler knows after one step; passed to callbacks."""

    index: int  # position in the walk, 0-based
    t: int  # the timestep of x_t
    t_next: int  # where the step went: a smaller t when sampling (-1 = clean), larger when inverting
    x_t: Tensor
    eps: Tensor  # eps_hat(x_t, t)
    x0_hat: Tensor  # the clean image implied by x_t and eps_hat
    x_next: Tensor  # the result of the step


Callback = Callable[[StepInfo], None]


def randn(shape: Sequence[int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal noise drawn on the generator's device and moved to ``like``'s.

    Drawing on the CPU generator keeps a seed's numbers identical on every device.
    """
    device = generator.device if generator is not None else like.device
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=like.dtype).to(like.device)


def evenly_spaced(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, as evenly spaced as integers allow (both ends included)."""
    if not 1 <= steps <= num_timesteps:
        raise ValueError(f"steps must be between 1 and {num_timesteps}, got {steps}")
    if steps == 1:
        return [num_timesteps - 1]
    values = torch.linspace(num_timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()
    return list(dict.fromkeys(values))  # drop duplicates, keep order


class Sampler(Component, ABC):
    """Walks the reverse process. Constructed as ``cls(config, schedule=NoiseSchedule)``."""

    @dataclass
    class Config:
        steps: int = 50
        #: Clamp x0_hat to [-1, 1] at every step (off in Patronus' published sampling).
        clip_x0: bool = False

    def __init__(self, config: Config, *, schedule: NoiseSchedule) -> None:
        self.config = config
        self.schedule = schedule

    def timesteps(self, steps: int | None = None) -> list[int]:
        """The descending timesteps visited when sampling with ``steps`` steps."""
        return evenly_spaced(self.schedule.num_timesteps, steps or self.config.steps)

    @abstractmethod
    def step(
        self, x_t: Tensor, t: int, t_prev: int, eps: Tensor, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor]:
        """Move from ``t`` to ``t_prev`` (-1 = clean); returns ``(x_prev, x0_hat)``."""

    def x0_and_eps(self, x_t: Tensor, t: int, eps: Tensor) -> tuple[Tensor, Tensor]:
        """x0_hat implied by ``eps`` (clipped if configured, with eps made consistent with it)."""
        x0 = self.schedule.predict_x0(x_t, t, eps)
        if self.config.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = self.schedule.predict_eps(x_t, t, x0)
        return x0, eps

    def sample(
        self,
        eps_fn: EpsFn,
        x_T: Tensor,
        *,
        timesteps: Sequence[int] | None = None,
        callback: Callback | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Denoise ``x_T`` along ``timesteps`` (default: :meth:`timesteps`); returns x_0."""
        seq = list(timesteps) if timesteps is not None else self.timesteps()
        x = x_T
        for index, t in enumerate(tqdm(seq, desc="sampling", disable=not progress, leave=False)):
            t_prev = seq[index + 1] if index + 1 < len(seq) else -1
            eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
            x_prev, x0_hat = self.step(x, t, t_prev, eps, generator)
            if callback is not None:
                callback(StepInfo(index, t, t_prev, x, eps, x0_hat, x_prev))
            x = x_prev
        return x

    @torch.no_grad()
    def invert(
        self,
        eps_fn: EpsFn,
        x0: Tensor,
        *,
        timesteps: Sequence[int] | None = None,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Deterministic DDIM inversion: the x_T from which eta=0 DDIM along the same timesteps
        regenerates ``x0`` (up to the error of evaluating eps one step early)."""
        seq = list(reversed(list(timesteps) if timesteps is not None else self.timesteps()))
        x = x0
        t_cur = -1
        for index, t_next in enumerate(tqdm(seq, desc="inverting", disable=not progress, leave=False)):
            t_eval = t_cur if t_cur >= 0 else t_next
            eps = eps_fn(x, torch.full((x.shape[0],), t_eval, device=x.device, dtype=torch.long))
            x0_hat, eps = self.x0_and_eps(x, t_cur, eps) if t_cur >= 0 else (x, eps)
            a_next = self.schedule.alpha_bar(t_next, x)
            x_next = a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps
            if callback is not None:
                callback(StepInfo(index, t_cur, t_next, x, eps, x0_hat, x_next))
            x, t_cur = x_next, t_next
        return x
