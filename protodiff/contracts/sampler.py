"""The ``sampler`` contract: walk the reverse process (or invert it), calling back at every step.

A sampler walks a descending sequence of timesteps (``timesteps``), and at each one asks a
``net_fn(x_t, t)`` for the denoiser's prediction, reads it as the pair (eps_hat, x0_hat)
(:meth:`Sampler.estimate`), and takes one ``step``. After every step it calls
``callback(StepInfo)`` with ``(t, x_t, eps_hat, x0_hat, x_next)``: every analysis tool is written
against this hook instead of copying the loop.

Samplers never see a model or a condition: :class:`~protodiff.model.ConditionedDiffusion` binds
both into ``net_fn``. A new sampler therefore only decides *which* timesteps to visit
(``timesteps``) and *how* to move between two of them (``step``); the loop, the callback and
inversion are written once, here. A multistep solver, which also needs the estimates of earlier
steps, returns a fresh step function per walk from :meth:`Sampler.walk`.

Per-step coefficients are Python floats read from the schedule's float64 table: nothing is built
or moved to the device inside the loop, so on CUDA no step waits for the GPU unless a callback
asks for a value.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from protodiff._registry.component import Component
from protodiff.errors import OptionError
from protodiff.validation import at_least

if TYPE_CHECKING:
    from protodiff.diffusion.schedule import NoiseSchedule

#: ``net_fn(x_t, t) -> prediction`` where ``t`` is a (B,) long tensor of timesteps; the
#: prediction is eps_hat or v_hat, as the ``prediction`` argument of the loops says.
NetFn = Callable[[Tensor, Tensor], Tensor]
#: A ``net_fn`` whose prediction is eps_hat.
EpsFn = NetFn
#: What a ``net_fn`` predicts: the noise (DDPM) or v = sqrt(a) eps - sqrt(1 - a) x0 (Salimans & Ho 2022).
Prediction = Literal["eps", "v"]


@dataclass
class StepInfo:
    """What a sampler knows after one step; passed to callbacks."""

    index: int  # position in the walk, 0-based
    t: int  # the timestep of x_t (-1 = clean, the first step of an inversion)
    t_next: int  # where the step went: a smaller t when sampling (-1 = clean), larger when inverting
    x_t: Tensor
    eps: Tensor  # eps_hat: the noise in x_t as the denoiser estimates it
    x0_hat: Tensor  # the clean image the denoiser's prediction implies, computed directly from it
    x_next: Tensor  # the result of the step


Callback = Callable[[StepInfo], None]
#: ``step(x_t, t, t_next, eps, x0, generator) -> x_next``: one step of a walk.
StepFn = Callable[[Tensor, int, int, Tensor, Tensor, torch.Generator | None], Tensor]


def randn(shape: Sequence[int], generator: torch.Generator | None, like: Tensor) -> Tensor:
    """Standard normal noise drawn on the generator's device and moved to ``like``'s.

    Drawing on the CPU generator keeps a seed's numbers identical on every device; the move to a
    GPU goes through pinned memory without blocking, so a stochastic step does not wait for it.
    """
    device = generator.device if generator is not None else like.device
    noise = torch.randn(tuple(shape), generator=generator, device=device, dtype=like.dtype)
    if noise.device.type == "cpu" and like.device.type == "cuda":
        return noise.pin_memory().to(like.device, non_blocking=True)
    return noise.to(like.device)


def evenly_spaced(num_timesteps: int, steps: int) -> list[int]:
    """``steps`` timesteps from T-1 down to 0, as evenly spaced as integers allow (both ends
    included); more steps than the schedule has timesteps is a one-line :class:`OptionError`."""
    if not 1 <= steps <= num_timesteps:
        raise OptionError(f"sampler steps must be between 1 and {num_timesteps} (the schedule's timesteps), got {steps}")
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

        def __post_init__(self) -> None:
            at_least(1, steps=self.steps)  # the most a schedule allows is checked when the walk is planned

    #: Where inversion evaluates the denoiser on the current point x_t: at the timestep the step
    #: goes to (``target``; diffusers' DDIMInverseScheduler, half the round-trip error of DDIM
    #: inversion at the point's own timestep, see docs/reference.md) or at its own (``current``;
    #: what a multistep solver's history needs). The first step, from the clean image, is always
    #: evaluated at its target.
    invert_at: ClassVar[Literal["target", "current"]] = "target"

    def __init__(self, config: Config, *, schedule: NoiseSchedule) -> None:
        self.config = config
        self.schedule = schedule

    def timesteps(self, steps: int | None = None) -> list[int]:
        """The descending timesteps visited when sampling with ``steps`` steps."""
        return evenly_spaced(self.schedule.num_timesteps, steps or self.config.steps)

    @abstractmethod
    def step(self, x_t: Tensor, t: int, t_next: int, eps: Tensor, x0: Tensor, generator: torch.Generator | None) -> Tensor:
        """Move from ``t`` to ``t_next`` (-1 = clean) given the estimates at (x_t, t); returns x_next."""

    def walk(self, timesteps: Sequence[int]) -> StepFn:
        """The step function for one walk along ``timesteps``: :meth:`step` itself, unless the
        sampler remembers earlier steps (a multistep solver), which returns a new function per
        walk so that a callback may start another walk with the same sampler."""
        return self.step

    def inverse_walk(self, timesteps: Sequence[int]) -> StepFn:
        """The step function for one inversion along ascending ``timesteps``: deterministic DDIM,
        x_next = sqrt(a_next) x0_hat + sqrt(1 - a_next) eps_hat (Song et al. 2021, eq. 12, eta 0),
        whatever the sampler's own step; a solver with its own inversion overrides this."""
        return self.ddim_step

    def ddim_step(
        self, x_t: Tensor, t: int, t_next: int, eps: Tensor, x0: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Deterministic DDIM between any two timesteps (either direction; -1 = clean)."""
        a_next = self.schedule.alpha_bar_at(t_next)
        scale: float = a_next**0.5
        return (x0 * scale).add_(eps, alpha=(1 - a_next) ** 0.5)

    def estimate(self, x_t: Tensor, t: int, prediction: Tensor, kind: Prediction = "eps") -> tuple[Tensor, Tensor]:
        """(eps_hat, x0_hat) from the denoiser's ``prediction`` at (x_t, t), each computed directly
        from it (see :meth:`NoiseSchedule.eps_and_x0`); with ``clip_x0`` x0_hat is clamped to
        [-1, 1] and eps_hat made consistent with it."""
        eps, x0 = self.schedule.eps_and_x0(x_t, t, prediction, kind)
        if self.config.clip_x0:
            x0 = x0.clamp(-1.0, 1.0)
            eps = self.schedule.eps_from_x0(x_t, t, x0)
        return eps, x0

    def sample(
        self,
        net_fn: NetFn,
        x_T: Tensor,
        *,
        prediction: Prediction = "eps",
        timesteps: Sequence[int] | None = None,
        callback: Callback | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> Tensor:
        """Denoise ``x_T`` along ``timesteps`` (default: :meth:`timesteps`); returns x_0.

        ``net_fn`` predicts eps (the default) or v (``prediction="v"``, what
        :meth:`ConditionedDiffusion.sample` passes for a v-model, so that x0_hat is read from v
        directly). Gradients are not switched off here (sampling can be differentiated); the
        model's ``sample`` runs this under ``torch.inference_mode``.
        """
        seq = list(timesteps) if timesteps is not None else self.timesteps()
        step = self.walk(seq)
        x = x_T
        for index, t in enumerate(tqdm(seq, desc="sampling", disable=not progress, leave=False)):
            t_next = seq[index + 1] if index + 1 < len(seq) else -1
            eps, x0_hat = self.estimate(x, t, net_fn(x, _batch_of(t, x)), prediction)
            x_next = step(x, t, t_next, eps, x0_hat, generator)
            if callback is not None:
                callback(StepInfo(index, t, t_next, x, eps, x0_hat, x_next))
            x = x_next
        return x

    @torch.no_grad()
    def invert(
        self,
        net_fn: NetFn,
        x0: Tensor,
        *,
        prediction: Prediction = "eps",
        timesteps: Sequence[int] | None = None,
        callback: Callback | None = None,
        progress: bool = False,
    ) -> Tensor:
        """The x_T from which sampling along the same timesteps regenerates ``x0`` (up to the
        error of estimating the denoiser at the current point instead of the one being solved for).

        Steps go through :meth:`inverse_walk` (deterministic DDIM unless the sampler has its own
        inversion), the denoiser evaluated as :attr:`invert_at` says.
        """
        seq = list(reversed(list(timesteps) if timesteps is not None else self.timesteps()))
        step = self.inverse_walk(seq)
        x, t = x0, -1
        for index, t_next in enumerate(tqdm(seq, desc="inverting", disable=not progress, leave=False)):
            t_eval = t_next if t < 0 or self.invert_at == "target" else t
            eps, x0_hat = self.estimate(x, t_eval, net_fn(x, _batch_of(t_eval, x)), prediction)
            if t_eval != t:  # keep eps_hat; the clean image it implies for x at its own noise level
                x0_hat = self.schedule.x0_from_eps(x, t, eps)
            x_next = step(x, t, t_next, eps, x0_hat, None)
            if callback is not None:
                callback(StepInfo(index, t, t_next, x, eps, x0_hat, x_next))
            x, t = x_next, t_next
        return x


def _batch_of(t: int, like: Tensor) -> Tensor:
    """Timestep ``t`` for every image of ``like``, on its device (a fill, no transfer)."""
    return torch.full((like.shape[0],), t, device=like.device, dtype=torch.long)
