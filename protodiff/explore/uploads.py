"""An uploaded image, checked and decoded in memory: the only thing a user of the explorer sends
that is more than a number.

Pillow opens only PNG and JPEG (``Image.open(..., formats=...)``: no other decoder ever sees the
bytes); the byte count is checked before decoding and the pixel count from the header before any
pixel is decompressed, so a small file that claims a huge image (a decompression bomb) is refused
unread. The image is cropped to its central square and resized to the run's size and channels.
Nothing is written to disk.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from protodiff.errors import ProtodiffError

#: The largest upload accepted, in bytes.
MAX_BYTES = 8 * 2**20
#: The largest image accepted, in pixels (width x height, read from the header before decoding).
MAX_PIXELS = 4096 * 4096
#: What Pillow is allowed to open.
FORMATS = ("PNG", "JPEG")


class UploadError(ProtodiffError):
    """An upload that is not an image the explorer accepts; the message says why, in one line."""


def _size(count: int) -> str:
    return f"{count / 2**20:.3g} MiB" if count >= 2**20 else f"{count / 2**10:.3g} KiB"


def decode_image(data: bytes, *, size: int, channels: int, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS) -> Tensor:
    """``data`` (the bytes of a PNG or JPEG) as one (channels, size, size) image in [-1, 1]: its
    central square, resized. A refusal is an :class:`UploadError` naming what was wrong."""
    if not data:
        raise UploadError("the upload is empty; choose a PNG or JPEG image")
    if len(data) > max_bytes:
        raise UploadError(f"the upload is {_size(len(data))}; at most {_size(max_bytes)} is accepted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise UploadError("not a PNG or JPEG image (Pillow cannot read it as either)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"the image claims more pixels than Pillow decodes safely; at most {max_pixels:,} pixels") from None
    width, height = image.size
    if width * height > max_pixels:
        raise UploadError(f"the image is {width} x {height} pixels; at most {max_pixels:,} pixels (e.g. 4096 x 4096)")
    if min(width, height) < 1:
        raise UploadError(f"the image is {width} x {height} pixels: empty")
    try:
        if image.format == "JPEG":
            image.draft("RGB", (size, size))  # decode a large JPEG at a reduced scale: faster, same result after resizing
        image = ImageOps.exif_transpose(image).convert("RGB" if channels == 3 else "L")
    except (OSError, ValueError, SyntaxError) as exc:  # Pillow's errors for a truncated or malformed file
        raise UploadError(f"the image is damaged ({' '.join(str(exc).split())[:120]})") from None
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.LANCZOS)
    array = np.asarray(image, dtype=np.float32)
    tensor = torch.from_numpy(array.copy()).reshape(size, size, -1).permute(2, 0, 1)
    return tensor / 127.5 - 1.0
