"""InfoDiffusion's encoder: a whole UNet without time input whose one-channel output map is
flattened and projected to the latent.

isjakewong/InfoDiffusion ``models.py`` (``Encoder``): a stem convolution, residual blocks down
every level and back up on the skips (the same levels and attention as the denoiser), a middle
of block-attention-block, then GroupNorm, SiLU and a 3x3 convolution to one channel, flattened
(H x W numbers) and mapped by one linear layer to the ``dim``-d latent. Its blocks are the core
UNet's (:mod:`protodiff.nn.levels`) built without time or condition inputs.
"""

from __future__ import annotations

from torch import Tensor, nn

from protodiff.nn.blocks import GroupNorm32
from protodiff.nn.levels import UNetLevels, UNetShape, run_down, run_middle, run_up


class UNetEncoder(nn.Module):
    """Image (B, C, H, W) -> latent (B, dim); every image is encoded on its own."""

    def __init__(self, shape: UNetShape, *, in_channels: int, image_size: int, dim: int) -> None:
        super().__init__()
        shape.require_side(image_size, "infodiff: the encoder")
        levels = UNetLevels(shape)
        self.stem = nn.Conv2d(in_channels, shape.base_channels, 3, padding=1)
        self.down, skips = levels.down()
        self.mid = levels.middle(attention=True)
        self.up = levels.up(skips)
        width = shape.base_channels * shape.channel_mult[0]
        self.head = nn.Sequential(
            GroupNorm32(shape.norm_groups, width),
            nn.SiLU(),
            nn.Conv2d(width, 1, 3, padding=1),
            nn.Flatten(),
            nn.Linear(image_size * image_size, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        h, skips = run_down(self.down, self.stem(x), None, None)
        h = run_middle(self.mid, h, None, None)
        return self.head(run_up(self.up, h, skips, None, None))
