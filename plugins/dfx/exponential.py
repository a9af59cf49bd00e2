"""The ``exponential`` sampler: DDIM along timesteps crowded into one stage of denoising.

"Visual analysis of diffusion" controls which stage of the reverse process a sampler spends its
steps in, to see which concepts each stage decides: with alpha = exp(ln T / (l + gamma)), the
values alpha^(i + 1 + gamma) for i = 0 .. l - 1 rise from T^((1 + gamma) / (l + gamma)) to T,
close together at the low end and far apart at the top. ``late`` visits those values (floored,
descending): its steps crowd near t = 0, where details are drawn, and the noisy stage gets a few
long jumps. ``early`` visits their mirror T - floor(alpha^(i + 1 + gamma)), starting at T - 1 and
without the final 0: its steps crowd near t = T, where layout and semantics are decided. The
published setting is T = 1000 (here the schedule's length), l = 30 steps and gamma = 60.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from protodiff import Registries, hookimpl
from protodiff.diffusion.samplers import DDIMSampler
from protodiff.errors import OptionError
from protodiff.validation import at_least


def exponential_timesteps(num_timesteps: int, steps: int, gamma: float, mode: Literal["early", "late"]) -> list[int]:
    """The descending timesteps of the ``mode`` schedule (see the module docstring); steps or a
    gamma that the schedule's length cannot hold is a one-line :class:`OptionError`."""
    if not 1 <= steps <= num_timesteps:
        raise OptionError(f"sampler steps must be between 1 and {num_timesteps} (the schedule's timesteps), got {steps}")
    alpha = math.exp(math.log(num_timesteps) / (steps + gamma))
    rising = [min(math.floor(alpha ** (i + 1 + gamma) + 1e-9), num_timesteps) for i in range(steps)]
    if mode == "late":
        values = [min(v, num_timesteps - 1) for v in reversed(rising)]
    else:
        values = [num_timesteps - 1] + [num_timesteps - v for v in rising][:-1]
    if any(a <= b for a, b in zip(values, values[1:])):
        raise OptionError(
            f"exponential: {steps} steps with gamma {gamma} repeat a timestep of {num_timesteps}; "
            "use fewer steps or a smaller gamma"
        )
    return values


class ExponentialSampler(DDIMSampler):
    """DDIM (any eta) whose timesteps crowd into the early or the late stage of denoising."""

    @dataclass
    class Config(DDIMSampler.Config):
        #: ``early``: steps crowd near t = T (semantics); ``late``: near t = 0 (details).
        mode: Literal["early", "late"] = "early"
        #: l, the number of steps (published: 30).
        steps: int = 30
        #: gamma, the shift of the exponential (published: 60); larger spreads the steps more evenly.
        gamma: float = 60.0

        def __post_init__(self) -> None:
            super().__post_init__()
            at_least(0, gamma=self.gamma)

    def timesteps(self, steps: int | None = None) -> list[int]:
        return exponential_timesteps(self.schedule.num_timesteps, steps or self.config.steps, self.config.gamma, self.config.mode)


def plot_spacing(path: str | Path, *, num_timesteps: int = 1000, steps: int = 30, gamma: float = 60.0) -> Path:
    """Draw where the ``early`` and ``late`` schedules put their steps, beside uniform DDIM spacing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from protodiff.contracts.sampler import evenly_spaced
    from protodiff.io import atomic_path

    rows = {
        f"early (l={steps}, gamma={gamma:g})": exponential_timesteps(num_timesteps, steps, gamma, "early"),
        "uniform (ddim)": evenly_spaced(num_timesteps, steps),
        f"late (l={steps}, gamma={gamma:g})": exponential_timesteps(num_timesteps, steps, gamma, "late"),
    }
    figure, axis = plt.subplots(figsize=(7, 2.2))
    for row, values in enumerate(rows.values()):
        axis.scatter(values, [row] * len(values), marker="|", s=300)
    axis.set_yticks(range(len(rows)), list(rows))
    axis.set_xlim(num_timesteps, -10)
    axis.set_xlabel("timestep t visited (sampling runs left to right, from noise to image)")
    figure.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
    return path


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.sampler.add("exponential", ExponentialSampler)
