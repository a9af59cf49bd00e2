"""DiffAE's semantic encoder: the down half of a UNet and its middle, with no time input, pooled
into one vector per image.

phizaz/diffae ``model/unet.py`` (``BeatGANsEncoderModel`` with ``pool='adaptivenonzero'``): a stem
convolution, residual blocks down every level (self-attention where the feature map is 16 px at
64 px inputs), a middle of block-attention-block, then GroupNorm, SiLU, global average pooling and
a 1x1 convolution to ``dim`` channels. Its blocks are the core UNet's (:mod:`protodiff.nn.levels`)
built without time or condition inputs.
"""

from __future__ import annotations

from torch import Tensor, nn

from protodiff.nn.blocks import GroupNorm32
from protodiff.nn.levels import UNetLevels, UNetShape, run_down, run_middle


class HalfUNetEncoder(nn.Module):
    """Image (B, C, H, W) -> semantic code (B, dim); every image is encoded on its own."""

    def __init__(self, shape: UNetShape, *, in_channels: int, image_size: int, dim: int) -> None:
        super().__init__()
        shape.require_side(image_size, "diffae: the semantic encoder")
        levels = UNetLevels(shape)
        self.stem = nn.Conv2d(in_channels, shape.base_channels, 3, padding=1)
        self.down, _ = levels.down()
        self.mid = levels.middle(attention=True)
        width = shape.deepest_channels
        self.head = nn.Sequential(
            GroupNorm32(shape.norm_groups, width), nn.SiLU(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(width, dim, 1), nn.Flatten()
        )

    def forward(self, x: Tensor) -> Tensor:
        h, _ = run_down(self.down, self.stem(x), None, None)
        return self.head(run_middle(self.mid, h, None, None))
