"""The core's own components, registered through the same hook every plugin uses."""

from __future__ import annotations

from pathlib import Path

from protodiff.conditioning import Unconditional
from protodiff.data.folder import Folder
from protodiff.data.shapes import Shapes
from protodiff.diffusion.samplers import DDIMSampler, DDPMSampler
from protodiff.hookspecs import hookimpl
from protodiff.nn.unet import UNet
from protodiff.registry import Registries

PRESETS_DIR = Path(__file__).parent / "presets"


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.conditioner.add("none", Unconditional)
    registry.denoiser.add("unet", UNet)
    registry.sampler.add("ddpm", DDPMSampler)
    registry.sampler.add("ddim", DDIMSampler)
    registry.dataset.add("shapes", Shapes)
    registry.dataset.add("folder", Folder)
    for path in sorted(PRESETS_DIR.glob("*.yaml")):
        registry.preset.add(path.stem, path)
