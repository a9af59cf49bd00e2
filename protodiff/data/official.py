"""What the sources reading an official distribution share: locating its files (and saying where
to get them when they are missing), and the two kinds of split they produce.

* :class:`ClassImages`: a classification set held in memory as uint8 arrays (FMNIST, CIFAR-10,
  digits). Its classes become one-vs-rest binary attributes, so every attribute metric applies
  unchanged, while ``labels`` keeps the integer class for tools that want it.
* :class:`ImageFiles`: images decoded from files on demand, labels parsed up front, so metrics
  read every label without decoding a single image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from protodiff.contracts.dataset import LabeledImages
from protodiff.data.decode import pil_to_tensor, read_image
from protodiff.errors import DataError


@dataclass(frozen=True)
class Distribution:
    """A dataset's official distribution, described for error messages: its layout and its URL."""

    name: str
    #: What ``root`` must hold, in words, e.g. "cifar-10-batches-py/ (data_batch_1..5, test_batch)".
    layout: str
    url: str

    def where(self) -> str:
        return f"{self.name} expects {self.layout}; get it from {self.url}"

    def root(self, configured: str | None) -> Path:
        """The configured root directory, which must exist."""
        if configured is None:
            raise DataError(
                f"{self.name} needs data.root (--data-root): the directory holding {self.layout}; get it from {self.url}"
            )
        root = Path(configured).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: no such directory; {self.where()}")
        return root

    def missing(self, path: Path) -> DataError:
        return DataError(f"{path}: missing; {self.where()}")

    def find(self, root: Path, candidates: Sequence[str]) -> Path:
        """The first of ``candidates`` (relative to ``root``) that exists; the error names the first."""
        for candidate in candidates:
            if (root / candidate).exists():
                return root / candidate
        raise self.missing(root / candidates[0])


def one_vs_rest(labels: Tensor, num_classes: int) -> Tensor:
    """(N,) integer classes -> (N, num_classes) float 0/1 rows with a single 1."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).float()


class ClassImages(LabeledImages):
    """In-memory uint8 images, (N, H, W) grey or (N, H, W, 3) colour, with one class each.

    ``pad`` zero-pads every side by that many pixels before the resize to ``image_size``.
    """

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, class_names: Sequence[str], image_size: int, pad: int = 0) -> None:
        super().__init__(list(class_names), 1 if pixels.ndim == 3 else 3, image_size)
        self.pixels = pixels
        #: The integer class of every item (the index of its 1 in ``attributes()``).
        self.labels = torch.tensor(labels, dtype=torch.long)
        self.class_names = list(class_names)
        self.pad = pad
        self._attributes = one_vs_rest(self.labels, len(self.class_names))

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        array = self.pixels[index]
        if self.pad:
            array = np.pad(array, [(self.pad, self.pad)] * 2 + [(0, 0)] * (array.ndim - 2))
        return pil_to_tensor(Image.fromarray(array), self.image_size, self.channels), self._attributes[index]

    def attributes(self) -> Tensor:
        return self._attributes

    def subset(self, indices: list[int]) -> ClassImages:
        return ClassImages(self.pixels[indices], self.labels[indices].numpy(), self.class_names, self.image_size, self.pad)


class ImageFiles(LabeledImages):
    """Image files with their attribute rows; ``listed_in`` (a file and one line number per item)
    lets a missing or corrupt image be reported together with the line that referenced it."""

    def __init__(
        self,
        paths: list[Path],
        attribute_names: Sequence[str],
        attributes: Tensor,
        channels: int,
        image_size: int,
        listed_in: tuple[Path, np.ndarray] | None = None,
        prepare: Callable[[Image.Image], Image.Image] | None = None,
    ) -> None:
        super().__init__(list(attribute_names), channels, image_size)
        self.paths = paths
        self._attributes = attributes
        self.listed_in = listed_in
        self.prepare = prepare

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        try:
            image = read_image(str(self.paths[index]), self.image_size, self.channels, self.prepare)
        except DataError as exc:
            if self.listed_in is None:
                raise
            listing, lines = self.listed_in
            raise DataError(f"{exc} (listed in {listing} line {lines[index]})") from None
        return image, self._attributes[index]

    def attributes(self) -> Tensor:
        return self._attributes
