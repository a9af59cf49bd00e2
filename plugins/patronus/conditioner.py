"""The ``patronus`` conditioner: prototype activations of the clean image condition the denoiser.

x0 -> encoder -> patch features z -> prototype layer -> s (one activation per prototype) ->
a 2-layer MLP -> the embedding each UNet block adds as a bias (``add`` mode). The whole chain is
trained with the denoiser by the denoising loss alone, as published; ``Condition.maps`` keeps the
patch-to-prototype distances, i.e. *where* each prototype fired.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
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

    def activation_maps(self, x0: Tensor) -> Tensor:
        """Where each prototype fires in images ``x0``: (B, K, H, W) at the images' size, see
        :func:`activation_maps`."""
        return activation_maps(self.encoder, self.prototype_layer, x0)


def activation_maps(encoder: Encoder, prototype_layer: PrototypeLayer, x0: Tensor) -> Tensor:
    """Each prototype's per-patch activation (``prototype_layer.patch_activations``, whose maximum
    over patches is the prototype's entry of ``s``) on images ``x0``, as (B, K, H, W) at the images'
    size: each patch's value placed at the centre of its receptive field (``encoder.receptive_field``)
    and interpolated bilinearly between centres, constant beyond the outermost ones. (A plain
    resize of the patch grid would stretch it over the whole image; the receptive fields of a
    padded stack do not reach that far, 2-3 px at 32 px for the shapes recipe's encoder.)"""
    _, distances = prototype_layer(encoder(x0))
    grid = prototype_layer.patch_activations(distances)
    return patches_to_pixels(grid, encoder, (x0.shape[-2], x0.shape[-1]))


def patches_to_pixels(grid: Tensor, encoder: Encoder, size: tuple[int, int]) -> Tensor:
    """Values on ``encoder``'s patch grid (B, K, h, w) resampled to pixels (B, K, H, W), each patch
    at the centre of its receptive field (see :func:`activation_maps`)."""
    h, w = grid.shape[-2:]

    def axis(count: int, length: int, centre: Callable[[int], float]) -> Tensor:
        if count == 1:
            return torch.zeros(length)
        centres = [centre(i) for i in range(count)]
        fraction = np.interp(np.arange(length), centres, np.arange(count))  # clamped beyond the ends
        return torch.from_numpy(2 * fraction / (count - 1) - 1).float()

    rows = axis(h, size[0], lambda i: (encoder.receptive_field(i, 0).top + encoder.receptive_field(i, 0).bottom - 1) / 2)
    cols = axis(w, size[1], lambda j: (encoder.receptive_field(0, j).left + encoder.receptive_field(0, j).right - 1) / 2)
    yy, xx = torch.meshgrid(rows, cols, indexing="ij")
    where = torch.stack([xx, yy], dim=-1).to(grid.device, grid.dtype).expand(len(grid), -1, -1, -1)
    return F.grid_sample(grid, where, mode="bilinear", align_corners=True)


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
