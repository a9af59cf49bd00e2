"""Noise schedules, the training objective, and the core's samplers (the sampler contract, with
the sampling loop and inversion, is :mod:`protodiff.contracts.sampler`)."""

from protodiff.diffusion.dpm_solver import DPMSolverPlusPlus
from protodiff.diffusion.objective import denoising_loss
from protodiff.diffusion.samplers import DDIMSampler, DDPMSampler
from protodiff.diffusion.schedule import NoiseSchedule, ScheduleConfig

__all__ = ["DDIMSampler", "DDPMSampler", "DPMSolverPlusPlus", "NoiseSchedule", "ScheduleConfig", "denoising_loss"]
