"""Image files and PIL images -> (C, H, W) tensors in [-1, 1], with one-line errors naming the file."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protodiff.errors import DataError


def pil_to_tensor(image: Image.Image, image_size: int, channels: int, resample: int = Image.Resampling.BICUBIC) -> Tensor:
    """A PIL image resized straight to ``image_size`` square (no crop), as (C, H, W) in [-1, 1]."""
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), resample=resample)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def read_image(path: str, image_size: int, channels: int, prepare: Callable[[Image.Image], Image.Image] | None = None) -> Tensor:
    """Read and convert one image file; an unreadable file is a one-line DataError naming it.

    ``prepare`` (e.g. a crop) runs on the decoded image before the resize.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return pil_to_tensor(image if prepare is None else prepare(image), image_size, channels)
    except FileNotFoundError:
        raise DataError(f"{path}: image file is missing") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read image ({' '.join(str(exc).split())})") from None
