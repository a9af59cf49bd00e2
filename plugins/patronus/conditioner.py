"""The ``patronus`` conditioner: prototype activations of the clean image condition the denoiser.

x0 -> encoder -> patch features z -> prototype layer -> s (one activation per prototype) ->
a 2-layer MLP -> the embedding each UNet block adds as a bias (``add`` mode). The whole chain is
trained with the denoiser by the denoising loss alone, as published; ``Condition.maps`` keeps the
patch-to-prototype distances, i.e. *where* each prototype fired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from protodiff import Registries, hookimpl
from protodiff.config import ComponentSpec, component
from protodiff.contracts.conditioner import Condition, Conditioner
from protodiff.validation import at_least
from protodiff_patronus.contracts import Box, Encoder, PrototypeLayer, require_prototypes

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion


class PatronusConditioner(Conditioner):
    """Prototype activations ``s`` as the condition (Weng et al., "Patronus", ICLR 2026)."""

    preferred_mode = "add"
    default_prior = "latent-ddpm"

    @dataclass
    class Config:
        encoder: ComponentSpec = component("encoder", "patronus-conv")
        prototype_layer: ComponentSpec = component("prototype_layer", "log-l2")
        #: Width of the condition embedding (published: 4 x the UNet's 64 base channels).
        embed_dim: int = 256
        #: Standardise s before the embedding with batch statistics (running averages at
        #: inference): every prototype's signal reaches the denoiser at unit scale, however small
        #: the gap between its activation on images with and without its concept (off: as published).
        standardise: bool = False

        def __post_init__(self) -> None:
            at_least(1, embed_dim=self.embed_dim)

    presets = {
        "test": {
            "encoder": {
                "name": "patronus-conv",
                "channels": (8, 16),
                "kernel_sizes": (3, 3),
                "strides": (2, 1),
                "paddings": (1, 0),
            },
            "prototype_layer": {"name": "log-l2", "num_prototypes": 5},
            "embed_dim": 16,
        }
    }

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.encoder: Encoder = config.encoder.build(in_channels=in_channels, image_size=image_size)
        self.prototype_layer: PrototypeLayer = config.prototype_layer.build(feature_dim=self.encoder.out_channels)
        self.dim = self.prototype_layer.num_prototypes
        self.embed_dim = config.embed_dim
        layers = [nn.BatchNorm1d(self.dim, affine=False)] if config.standardise else []
        self.embedding = nn.Sequential(
            *layers, nn.Linear(self.dim, config.embed_dim), nn.SiLU(), nn.Linear(config.embed_dim, config.embed_dim)
        )

    def default_names(self) -> list[str]:
        return [f"proto_{i:02d}" for i in range(self.dim)]

    def encode(self, x0: Tensor) -> Condition:
        s, distances = self.prototype_layer(self.encoder(x0))
        return Condition(s, self.names, maps=distances, aux_loss=self.prototype_layer.aux_loss())

    def embed(self, vector: Tensor) -> Tensor:
        return self.embedding(vector)


def nearest_patch_boxes(encoder: Encoder, maps: Tensor) -> list[list[Box]]:
    """For each image and prototype, the pixel box of the patch of ``maps`` (B, m, H, W) closest to
    the prototype (its smallest distance), placed by ``encoder``'s receptive fields."""
    width = maps.shape[-1]
    flat = maps.flatten(2).argmin(dim=2).cpu()
    rows, cols = torch.div(flat, width, rounding_mode="floor"), flat % width
    return [[encoder.receptive_field(int(r), int(c)) for r, c in zip(rs, cs)] for rs, cs in zip(rows, cols)]


@torch.no_grad()
def nearest_patches(model: ConditionedDiffusion, x0: Tensor) -> list[list[Box]]:
    """For each image of ``x0`` and each prototype of ``model``, the pixel box of the image patch
    closest to the prototype: where in the image the prototype is (a prototype conditioner only)."""
    conditioner = require_prototypes(model, "nearest_patches")
    return nearest_patch_boxes(conditioner.encoder, model.encode(x0).maps)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.conditioner.add("patronus", PatronusConditioner)
