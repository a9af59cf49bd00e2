"""``df-cam`` and ``df-rise`` as saliency sources of the ``localisation`` metric.

Each clean image is diffused to step ``t`` (noise from the metric's seeded generator) and explained
under its own condition, as ``protodiff explain df-cam`` does. ``target`` says what is explained:

``prediction`` (default: the published estimators)
    DF-CAM's gradient target is the whole predicted noise; DF-RISE scores a mask by SSIM's
    structure term between the prediction from the masked x_t and from the whole x_t. Both say
    where in x_t the *denoiser's output* comes from, whatever it is about: nothing ties the map to
    any one attribute, so one map per image is scored against each of its regions.
``condition`` (targeted)
    The number explained is the attribute's best condition dimension (Patronus: its best
    prototype) measured on the clean image the prediction implies: x0_hat = (x_t - sqrt(1 - a)
    eps_hat) / sqrt(a), re-encoded by the model's own conditioner. DF-CAM backpropagates that
    activation (instead of the noise's sum) to the block; DF-RISE scores each mask by the
    activation of x0_hat computed from the *whole* x_t and the masked copy's eps_hat. Keeping x_t
    whole in that formula matters: masking it there too would let x0_hat lose the attribute's
    pixels through the identity term, and the map would find the attribute without asking the
    denoiser anything; as it is, only the denoiser's use of each pixel moves the score. A model
    without a condition has nothing to aim at and is refused.

Why a targeted variant: the published scores measure how much of the prediction (all of it, at
every pixel) a mask or a channel carries, so their maps follow whatever the denoiser spends its
output on (edges, the background tone under heavy noise), not the concept a person asks about.
Aiming at one concept's score is how Grad-CAM and RISE are used on classifiers (a class logit),
and it is what a localisation against one attribute's region can fairly test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from protodiff import Registries, hookimpl
from protodiff.contracts.conditioner import Condition
from protodiff.contracts.saliency import Saliency, Target
from protodiff.errors import ProtodiffError, UnsupportedModel
from protodiff.validation import at_least, one_of
from protodiff_dfx.saliency import BASELINES, BORDERS, DFCam, DFRise, default_layer

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion

Aim = Literal["prediction", "condition"]


def diffuse(model: ConditionedDiffusion, x0: Tensor, t: int, generator: torch.Generator) -> tuple[Tensor, Condition | None]:
    """``x0`` diffused to step ``t`` with noise from ``generator``, and the condition of ``x0``."""
    noise = torch.randn(x0.shape, generator=generator).to(model.device)
    x0 = x0.to(model.device)
    x_t = model.schedule.q_sample(x0, torch.full((len(x0),), t, dtype=torch.long, device=model.device), noise)
    with torch.no_grad():
        condition = model.encode(x0).detach() if model.is_conditional else None
    return x_t, condition


def _dimension(model: ConditionedDiffusion, target: Target | None, name: str) -> int:
    if not model.is_conditional:
        raise UnsupportedModel(f"{name} with target=condition needs a model with a condition to aim at")
    if target is None or target.dimension is None:
        raise ProtodiffError(f"{name} with target=condition needs the condition dimension to explain (a Target)")
    return target.dimension


def _check(model: ConditionedDiffusion, t: int, aim: str, name: str) -> None:
    model.schedule.check_timestep(t, option=f"{name}.t")
    if aim == "condition" and not model.is_conditional:
        raise UnsupportedModel(f"{name}: target=condition needs a model with a condition; this one is unconditional")


class DFCamMap(Saliency):
    """DF-CAM on a block of the denoiser, at step ``t``, aimed at the prediction or at one attribute."""

    @dataclass
    class Config:
        #: The step the image is diffused to (docs/reference.md: 50, DF-CAM's best setting on shapes).
        t: int = 50
        #: The denoiser block (``protodiff_dfx.layer_names``); null: the last at half the image size.
        layer: str | None = None
        #: ``prediction``: the published target; ``condition``: the attribute's best dimension on x0_hat.
        target: Aim = "prediction"

        def __post_init__(self) -> None:
            at_least(0, t=self.t)
            one_of(("prediction", "condition"), target=self.target)

    @property
    def targeted(self) -> bool:
        return self.config.target == "condition"

    def check(self, model: ConditionedDiffusion) -> None:
        _check(model, self.config.t, self.config.target, "df-cam")
        DFCam(model, layer=self.config.layer or default_layer(model))  # an unknown block: one line

    def describe(self) -> dict[str, Any]:
        aim = self.config.target
        return {
            "map": f"DF-CAM at t = {self.config.t} on {self.config.layer or 'the last block at half the image size'}",
            "explains": "the whole predicted noise (published)"
            if aim == "prediction"
            else "the target dimension of the conditioner on x0_hat = (x_t - sqrt(1-a) eps_hat) / sqrt(a)",
        }

    def maps(self, model: ConditionedDiffusion, x0: Tensor, *, target: Target | None, generator: torch.Generator) -> Tensor:
        t = self.config.t
        tool = DFCam(model, layer=self.config.layer or default_layer(model))
        x_t, condition = diffuse(model, x0, t, generator)
        if self.config.target == "prediction":
            return tool.attribute(x_t, t=t, condition=condition)
        k = _dimension(model, target, "df-cam")

        def activation(eps: Tensor) -> Tensor:
            return model.encode(model.schedule.x0_from_eps(x_t, t, eps)).vector[:, k]

        return tool.attribute(x_t, t=t, condition=condition, objective=activation)


class DFRiseMap(Saliency):
    """DF-RISE at step ``t``, aimed at the prediction (published score) or at one attribute."""

    @dataclass
    class Config:
        #: The step the image is diffused to (docs/reference.md: 50).
        t: int = 50
        num_masks: int = 500
        cell: int = 4
        probability: float = 0.5
        batch_size: int = 50
        #: What is taken out of the scores (DFRise's ``baseline``; ``published`` as published).
        baseline: str = "coverage"
        #: SSIM's border (DFRise's ``border``; ``valid`` as published).
        border: str = "reflect"
        #: ``prediction``: the published SSIM score; ``condition``: the attribute's best dimension on x0_hat.
        target: Aim = "prediction"

        def __post_init__(self) -> None:
            at_least(0, t=self.t)
            at_least(1, num_masks=self.num_masks, cell=self.cell, batch_size=self.batch_size)
            one_of(BASELINES, baseline=self.baseline)
            one_of(BORDERS, border=self.border)
            one_of(("prediction", "condition"), target=self.target)

    presets = {"test": {"num_masks": 40, "batch_size": 20}}

    @property
    def targeted(self) -> bool:
        return self.config.target == "condition"

    def check(self, model: ConditionedDiffusion) -> None:
        _check(model, self.config.t, self.config.target, "df-rise")

    def describe(self) -> dict[str, Any]:
        c = self.config
        return {
            "map": f"DF-RISE at t = {c.t}: {c.num_masks} masks of {c.cell} px cells, p = {c.probability}, "
            f"baseline {c.baseline}, border {c.border}",
            "explains": "SSIM structure of the whole predicted noise (published)"
            if c.target == "prediction"
            else "the target dimension of the conditioner on x0_hat from the whole x_t and the masked copy's eps_hat",
        }

    def maps(self, model: ConditionedDiffusion, x0: Tensor, *, target: Target | None, generator: torch.Generator) -> Tensor:
        c = self.config
        tool = DFRise(
            model, num_masks=c.num_masks, probability=c.probability, cell=c.cell, batch_size=c.batch_size,
            baseline=c.baseline, border=c.border,
        )  # fmt: skip
        x_t, condition = diffuse(model, x0, c.t, generator)
        if c.target == "prediction":
            return tool.attribute(x_t, t=c.t, condition=condition, generator=generator)
        k = _dimension(model, target, "df-rise")

        def activation(eps: Tensor, row: int) -> Tensor:
            x0_hat = model.schedule.x0_from_eps(x_t[row : row + 1].expand_as(eps), c.t, eps)
            return model.encode(x0_hat).vector[:, k].float()

        return tool.attribute(x_t, t=c.t, condition=condition, generator=generator, score=activation)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.saliency.add("df-cam", DFCamMap)
    registry.saliency.add("df-rise", DFRiseMap)
