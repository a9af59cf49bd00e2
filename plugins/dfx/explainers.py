"""``df-rise`` and ``df-cam`` as explainers: real images diffused to step ``t`` (seeded noise),
explained under their own condition, drawn as image | x_t | saliency over the image."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.errors import OptionError
from protodiff.figures import heat_over
from protodiff.model import ConditionedDiffusion
from protodiff.validation import at_least, one_of
from protodiff.validation import seed as check_seed
from protodiff_dfx.localisation import diffuse
from protodiff_dfx.saliency import BASELINES, BORDERS, DFCam, DFRise, along_trajectory, default_layer


def _explanation(
    name: str, tool: DFRise | DFCam, model: ConditionedDiffusion, x0: Tensor, t: int, seed: int, points: int, meta: dict
) -> Explanation:
    """The maps of ``x0`` diffused to ``t``; with ``points``, also one sampling walk from fresh
    noise under the first image's condition, explained at that many of its steps."""
    from protodiff.figures import save_image_grid

    check_against_model(model, t, points)
    x_t, condition = diffuse(model, x0, t, torch.Generator().manual_seed(seed))
    maps = tool.attribute(x_t, t=t, condition=condition)
    tensors = {"saliency": maps, "x_t": x_t, "images": x0}
    figures = {
        "saliency.png": lambda path: save_image_grid(
            path, [("image", x0), (f"x_t (t={t})", x_t.clamp(-1, 1)), (name, heat_over(x0, maps))], title=f"{name} at t = {t}"
        )
    }
    if points:
        first = None if condition is None else condition.vector[:1]
        x_T = model.noise(1, torch.Generator().manual_seed(seed)).to(model.device)
        walk = along_trajectory(tool, model, x_T=x_T, condition=first, points=points)
        x0_hat, walk_maps = walk.x0_hat[:, 0].clamp(-1, 1), walk.maps[:, 0]
        tensors |= {
            "trajectory_x0_hat": x0_hat,
            "trajectory_saliency": walk_maps,
            "trajectory_timesteps": torch.tensor(walk.timesteps),
        }
        figures["trajectory.png"] = lambda path: save_image_grid(
            path,
            [("x0_hat", x0_hat), (name, heat_over(x0_hat, walk_maps))],
            per_row=len(walk.timesteps),
            title=f"{name} along one sampling walk, t = " + ", ".join(map(str, walk.timesteps)),
        )
        meta = {**meta, "trajectory_timesteps": walk.timesteps}
    return Explanation(name, tensors, meta, figures)


def check_against_model(model: ConditionedDiffusion, t: int, points: int) -> None:
    """What the options can only be checked against once the model is known, before any work: ``t``
    is a timestep of its schedule, and a trajectory asks for no more points than its walk has steps."""
    model.schedule.check_timestep(t, "t")
    if points:
        steps = len(model.sampler().timesteps())
        if points > steps:
            raise OptionError(f"trajectory={points}: the sampling walk has {steps} steps to explain; use at most {steps}")


class DFRiseExplainer(Explainer):
    """DF-RISE: which pixels of x_t the predicted noise depends on (random masks, SSIM structure)."""

    @dataclass
    class Config:
        #: The timestep the images are diffused to and explained at.
        t: int = 300
        num_masks: int = 500
        probability: float = 0.5
        cell: int = 4
        batch_size: int = 50
        seed: int = 0
        #: What is taken out of the scores: coverage (default), mean, or published (DFRise's baseline).
        baseline: str = "coverage"
        #: The structure term's border: reflect (default) or valid (as published; DFRise's border).
        border: str = "reflect"
        #: Also explain one sampling walk (the run's sampler) at this many of its steps (0: off).
        trajectory: int = 0

        def __post_init__(self) -> None:
            at_least(0, t=self.t, trajectory=self.trajectory)
            at_least(1, num_masks=self.num_masks, cell=self.cell, batch_size=self.batch_size)
            if not 0.0 < self.probability < 1.0:
                raise ValueError(f"probability must be in (0, 1), got {self.probability}")
            check_seed(seed=self.seed)
            one_of(BASELINES, baseline=self.baseline)
            one_of(BORDERS, border=self.border)

    def explain(self, model: ConditionedDiffusion, batch: Tensor) -> Explanation:
        c = self.config
        rise = DFRise(
            model,
            num_masks=c.num_masks,
            probability=c.probability,
            cell=c.cell,
            batch_size=c.batch_size,
            seed=c.seed,
            baseline=c.baseline,
            border=c.border,
        )
        return _explanation(
            "df-rise",
            rise,
            model,
            batch,
            c.t,
            c.seed,
            c.trajectory,
            {"t": c.t, "num_masks": c.num_masks, "seed": c.seed, "baseline": c.baseline, "border": c.border},
        )


class DFCamExplainer(Explainer):
    """DF-CAM: Grad-CAM of the predicted noise on one block of the denoiser."""

    @dataclass
    class Config:
        t: int = 300
        #: The denoiser block (protodiff_dfx.layer_names(model)); empty: the last at half the image size.
        layer: str = ""
        seed: int = 0
        #: Also explain one sampling walk (the run's sampler) at this many of its steps (0: off).
        trajectory: int = 0

        def __post_init__(self) -> None:
            at_least(0, t=self.t, trajectory=self.trajectory)
            check_seed(seed=self.seed)

    def explain(self, model: ConditionedDiffusion, batch: Tensor) -> Explanation:
        c = self.config
        check_against_model(model, c.t, c.trajectory)
        layer = c.layer or default_layer(model)
        return _explanation(
            "df-cam",
            DFCam(model, layer=layer),
            model,
            batch,
            c.t,
            c.seed,
            c.trajectory,
            {"t": c.t, "layer": layer, "seed": c.seed},
        )


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("df-rise", DFRiseExplainer)
    registry.explainer.add("df-cam", DFCamExplainer)
