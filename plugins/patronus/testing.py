"""Conformance checks of the two kinds Patronus adds (``encoder``, ``prototype_layer``).

The plugin adds each kind with its check (``registry.add_kind("encoder", Encoder,
check=check_encoder)``), so :func:`protodiff.testing.check_component` runs them like the core's.
"""

from __future__ import annotations

import torch

from protodiff.testing import BATCH, IMAGE_SIZE, build, images, require, require_grads_reach


def check_encoder(name: str) -> None:
    """``z`` is (B, out_channels, H, W); every position's receptive field lies inside the image;
    gradients reach the parameters."""
    encoder = build("encoder", name, in_channels=3, image_size=IMAGE_SIZE)
    z = encoder(images())
    require(
        z.dim() == 4 and z.shape[:2] == (BATCH, encoder.out_channels),
        f"encoder {name}: z has shape {tuple(z.shape)}, expected ({BATCH}, {encoder.out_channels}, H, W)",
    )
    height, width = z.shape[-2:]
    for i, j in ((0, 0), (height - 1, width - 1)):
        box = encoder.receptive_field(i, j)
        require(
            0 <= box.top < box.bottom <= IMAGE_SIZE and 0 <= box.left < box.right <= IMAGE_SIZE,
            f"encoder {name}: receptive field {box} of ({i}, {j}) is not inside the {IMAGE_SIZE} px image",
        )
    z.square().mean().backward()
    require_grads_reach(encoder, f"encoder {name}")


def check_prototype_layer(name: str) -> None:
    """``s`` is (B, m), ``maps`` (B, m, H, W) on the features' grid, both finite; gradients reach the features."""
    layer = build("prototype_layer", name, feature_dim=16)
    z = torch.randn(BATCH, 16, 5, 4, requires_grad=True)
    s, maps = layer(z)
    m = layer.num_prototypes
    require(s.shape == (BATCH, m), f"prototype_layer {name}: s has shape {tuple(s.shape)}, expected ({BATCH}, {m})")
    require(
        maps.shape == (BATCH, m, 5, 4),
        f"prototype_layer {name}: maps have shape {tuple(maps.shape)}, expected ({BATCH}, {m}, 5, 4)",
    )
    require(torch.isfinite(s).all() and torch.isfinite(maps).all(), f"prototype_layer {name}: non-finite output")
    s.sum().backward()
    require(z.grad is not None and torch.isfinite(z.grad).all(), f"prototype_layer {name}: no finite gradient to the features")
