"""protodiff_patronus: the Patronus method (prototype-conditioned diffusion) as a protodiff plugin.

Registers, through the same entry point any third-party plugin uses:
    encoder          patronus-conv, timm-<name>
    prototype_layer  log-l2, cosine
    conditioner      patronus
    latent_prior     latent-ddpm
    preset           patronus-shapes (CPU) and the paper presets patronus-{fmnist,cifar10,celeba,ffhq,chexpert}
"""

from __future__ import annotations

from pathlib import Path

from protodiff.hookspecs import hookimpl
from protodiff.registry import Registries
from protodiff_patronus.conditioner import PatronusConditioner
from protodiff_patronus.encoder import PatronusConvEncoder, timm_encoder
from protodiff_patronus.prior import LatentDDPM
from protodiff_patronus.prototypes import CosinePrototypes, LogL2Prototypes

PRESETS_DIR = Path(__file__).parent / "presets"


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.encoder.add("patronus-conv", PatronusConvEncoder)
    registry.encoder.add_family("timm-", timm_encoder)
    registry.prototype_layer.add("log-l2", LogL2Prototypes)
    registry.prototype_layer.add("cosine", CosinePrototypes)
    registry.conditioner.add("patronus", PatronusConditioner)
    registry.latent_prior.add("latent-ddpm", LatentDDPM)
    registry.add_presets(PRESETS_DIR)
