"""``digits``: scikit-learn's bundled 8x8 handwritten digits, the small *real* dataset that runs
anywhere (no download, no ``root``).

1797 grey images of the digits 0-9 (the UCI "optical recognition of handwritten digits" test
set, shipped inside scikit-learn). Pixel values 0..16 are scaled to [-1, 1] and upsampled to
``image_size`` (32; 16 is plenty for a quick CPU run) bicubic. Split: in file order, the first
1437 images (80 %) are ``train`` and the last 360 ``test``, so the split never depends on a seed.
Attributes: the 10 digits one-vs-rest (``digit_0`` ... ``digit_9``); ``labels`` holds the digit.
"""

from __future__ import annotations

import numpy as np

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, LabeledImages
from protodiff.data.official import ClassImages

CLASSES = tuple(f"digit_{d}" for d in range(10))
NUM_TRAIN = 1437
_MAX_VALUE = 16


class Digits(DatasetSource):
    """scikit-learn's 1797 real handwritten digits, 8 px upsampled (1 channel, 10 classes)."""

    @property
    def channels(self) -> int:
        return 1

    def expected_size(self, split: str) -> int | None:
        return NUM_TRAIN if split == "train" else 1797 - NUM_TRAIN

    def load(self, split: str) -> LabeledImages:
        from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

        bunch = load_digits()
        pixels = np.rint(bunch.images * (255 / _MAX_VALUE)).astype(np.uint8)
        part = slice(None, NUM_TRAIN) if split == "train" else slice(NUM_TRAIN, None)
        return ClassImages(pixels[part], bunch.target[part], CLASSES, self.config.image_size)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("digits", Digits)
