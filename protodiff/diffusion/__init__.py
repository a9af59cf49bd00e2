"""Noise schedules, the training objective, samplers and DDIM inversion."""

from protodiff.diffusion.objective import denoising_loss
from protodiff.diffusion.samplers import Callback, DDIMSampler, DDPMSampler, EpsFn, Sampler, StepInfo
from protodiff.diffusion.schedule import NoiseSchedule, ScheduleConfig

__all__ = [
    "Callback",
    "DDIMSampler",
    "DDPMSampler",
    "EpsFn",
    "NoiseSchedule",
    "Sampler",
    "ScheduleConfig",
    "StepInfo",
    "denoising_loss",
]
