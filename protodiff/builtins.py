"""The core's own components, registered through the same hook every plugin uses."""

from __future__ import annotations

from pathlib import Path

from protodiff.conditioning import Unconditional
from protodiff.data import SOURCES
from protodiff.diffusion.samplers import DDIMSampler, DDPMSampler
from protodiff.hookspecs import hookimpl
from protodiff.metrics import METRICS
from protodiff.nn.unet import UNet
from protodiff.registry import Registries

PRESETS_DIR = Path(__file__).parent / "presets"


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.conditioner.add("none", Unconditional)
    registry.denoiser.add("unet", UNet)
    registry.sampler.add("ddpm", DDPMSampler)
    registry.sampler.add("ddim", DDIMSampler)
    for name, source in SOURCES.items():
        registry.dataset.add(name, source)
    for name, metric in METRICS.items():
        registry.metric.add(name, metric)
    registry.add_presets(PRESETS_DIR)
