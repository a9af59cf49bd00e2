"""``inversion-error``: how exactly inversion followed by regeneration returns a real image.

Editing a real image (turn one prototype up, keep everything else) starts from its inversion x_T;
if regenerating from x_T with the *unchanged* condition does not give the image back, part of any
edit is inversion error rather than the edit. This metric measures that round trip, for the
sampler the options name (else the run's): DDIM inverts with DDIM, ``dpm-solver++`` with itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.config import ComponentSpec, optional_component, override_component
from protodiff.contracts.metric import EvalContext, Metric
from protodiff.errors import OptionError
from protodiff.validation import at_least

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.model import ConditionedDiffusion


class InversionError(Metric):
    """Mean absolute error and PSNR of invert-then-regenerate, per number of steps."""

    @dataclass
    class Config:
        num_images: int = 64
        steps: tuple[int, ...] = (20, 50, 200)
        batch_size: int = 64
        #: null: the run's sampler (``EvalContext.sampler``), else ``ddim``; its steps are ``steps``.
        sampler: ComponentSpec | None = optional_component("sampler")

        def __post_init__(self) -> None:
            if not self.steps:
                raise ValueError("steps must list at least one number of steps")
            at_least(1, num_images=self.num_images, steps=self.steps, batch_size=self.batch_size)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        """Every number of steps fits the model's schedule (before any image is inverted)."""
        most = model.schedule.num_timesteps
        for steps in self.config.steps:
            if steps > most:
                raise OptionError(f"inversion-error.steps: {steps} steps, more than the schedule's {most} timesteps")

    @torch.no_grad()
    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        progress = context.progress
        count = min(self.config.num_images, len(data))
        images = torch.stack([data[i][0] for i in range(count)])
        chosen = self.config.sampler or context.sampler or ComponentSpec("sampler", "ddim")
        by_steps = {}
        for steps in self.config.steps:
            sampler = model.sampler(override_component(chosen, None, {"steps": steps}))
            errors, squared, spreads = [], [], []
            for start in range(0, count, self.config.batch_size):
                x0 = images[start : start + self.config.batch_size].to(model.device)
                condition = model.encode(x0)
                x_T = model.invert(x0, condition=condition, sampler=sampler, progress=progress)
                again = model.sample(condition=condition, x_T=x_T, sampler=sampler, progress=progress)
                errors.append((again - x0).abs().flatten(1).mean(1).cpu())
                squared.append((again - x0).square().flatten(1).mean(1).cpu())
                spreads.append(x_T.flatten(1).std(1).cpu())
            mse = torch.cat(squared).mean().item()
            by_steps[str(steps)] = {
                "mean_abs_error": torch.cat(errors).mean().item(),
                # images span [-1, 1]: a peak-to-peak range of 2
                "psnr_db": 10 * math.log10(4.0 / mse) if mse > 0 else math.inf,
                # ~1 when the inverted latent looks like the Gaussian noise sampling starts from
                "x_T_std": torch.cat(spreads).mean().item(),
            }
        return {
            "label": "inversion round trip",
            "num_images": count,
            "by_steps": by_steps,
            "sampler": chosen.name,
            "protocol": {"round_trip": "x_T = invert(x0 | c(x0)); x0' = sample(x_T | c(x0)), same sampler and steps"},
        }


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.metric.add("inversion-error", InversionError)
