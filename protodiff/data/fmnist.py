"""``fmnist``: Fashion-MNIST read from its four official idx files.

Layout under ``root`` (as in https://github.com/zalandoresearch/fashion-mnist, ``data/fashion/``),
each file gzipped (``.gz``, as distributed) or not::

    train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]    60,000 training images
    t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]     10,000 test images

torchvision's download folder (``root/FashionMNIST/raw/``) is found too.

Images are 28x28 grey, resized to ``image_size`` (32) bicubic as Patronus does
(nina-weng/patronus ``train/transform_config.py``: ``Resize((32, 32), BICUBIC, antialias=True)``);
``fit: pad`` instead zero-pads 2 px per side to 32 (the LeNet/DDPM convention), then resizes only if
``image_size`` is not 32. Attributes: the 10 classes one-vs-rest; the split's ``labels`` holds the
integer class.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.official import ClassImages, Distribution
from protodiff.errors import DataError

CLASSES = ("tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle_boot")
_PREFIX = {"train": "train", "test": "t10k"}
_SIZES = {"train": 60000, "test": 10000}
_UBYTE = 0x08  # the idx type code of unsigned bytes

DISTRIBUTION = Distribution(
    "fmnist",
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (each optionally .gz)",
    "https://github.com/zalandoresearch/fashion-mnist",
)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """A uint8 idx file (gzipped when its name ends in .gz) as an array of ``ndim`` dimensions.

    Written out rather than borrowed from torchvision, whose reader asserts on bad headers and
    cannot say which part of a truncated file is short.
    """
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({' '.join(str(exc).split())}); the download may be truncated") from None
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated: {len(data)} bytes, shorter than the {header}-byte idx header")
    if data[:2] != b"\0\0" or data[2] != _UBYTE or data[3] != ndim:
        raise DataError(f"{path}: not an idx file of {ndim}-dimensional unsigned bytes (header {data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected, found = int(np.prod(shape)), len(data) - header
    if found < expected:
        raise DataError(
            f"{path}: truncated: the header promises {'x'.join(map(str, shape))} = {expected} bytes of data, the file has {found}"
        )
    if found > expected:
        raise DataError(f"{path}: {found - expected} bytes after the {'x'.join(map(str, shape))} data the header promises")
    return np.frombuffer(data, dtype=np.uint8, count=expected, offset=header).reshape(shape)


class FashionMNIST(DatasetSource):
    """Fashion-MNIST (28 px grey clothing, 10 classes) from the official idx files."""

    @dataclass
    class Config(DataSourceConfig):
        #: ``resize`` 28 -> image_size bicubic (Patronus), or ``pad`` 2 px of black to 32 first.
        fit: Literal["resize", "pad"] = "resize"

    @property
    def channels(self) -> int:
        return 1

    def expected_size(self, split: str) -> int | None:
        return _SIZES[split]

    def load(self, split: str) -> LabeledImages:
        root = DISTRIBUTION.root(self.config.root)
        images_path = self._file(root, f"{_PREFIX[split]}-images-idx3-ubyte")
        labels_path = self._file(root, f"{_PREFIX[split]}-labels-idx1-ubyte")
        images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
        if len(images) != len(labels):
            raise DataError(
                f"{labels_path}: {len(labels)} labels for the {len(images)} images of {images_path}; the files come from different copies"
            )
        bad = np.flatnonzero(labels >= len(CLASSES))
        if len(bad):
            raise DataError(f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is not a class 0..{len(CLASSES) - 1}")
        return ClassImages(images, labels, CLASSES, self.config.image_size, pad=2 if self.config.fit == "pad" else 0)

    @staticmethod
    def _file(root: Path, stem: str) -> Path:
        return DISTRIBUTION.find(
            root, [f"{folder}{stem}{suffix}" for folder in ("", "FashionMNIST/raw/") for suffix in ("", ".gz")]
        )


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("fmnist", FashionMNIST)
