"""``ffhq``: Flickr-Faces-HQ, a folder of numbered PNGs, with attributes only if you supply them.

Layout (https://github.com/NVlabs/ffhq-dataset): ``root`` is one variant's folder, or the
dataset folder holding one or more of them::

    images1024x1024/ | thumbnails128x128/ | images256x256/ ...   one variant per folder
      00000/00000.png ... 00999.png
      ...
      69000/69000.png ... 69999.png        1000 images per sub-folder (a flat folder works too)

Given the dataset folder, the smallest variant at least ``image_size`` wide is read (decoding the
128 px thumbnails for 64 px training is far cheaper than the 1024 px originals). Images are
resized straight to ``image_size`` (64) bicubic, as Patronus does for its face datasets.

Split: FFHQ ships none. Images numbered below ``test_start`` (60000) are ``train``, the rest
``test``: the 60k/10k sizes common in the literature, decided by the image number alone so that the
same image is in the same split whatever subset or variant a copy holds.

Attributes: none, unless ``attributes_csv`` names a CSV (``filename,attr_a,...`` with 0/1 values,
filenames such as ``00042.png``, a row for every image), read exactly as the ``folder`` source does.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.folder import read_attributes_csv
from protodiff.data.official import Distribution, ImageFiles
from protodiff.errors import DataError

NUM_IMAGES = 70000
_VARIANT = re.compile(r"^(?:images|thumbnails)(\d+)x\1$")
_IMAGE = re.compile(r"^(\d{5})\.png$")
_SUBFOLDER = re.compile(r"^\d{5}$")

DISTRIBUTION = Distribution(
    "ffhq",
    "NNNNN/NNNNN.png images (1000 per sub-folder), in images1024x1024/, thumbnails128x128/ or a resized variant's folder",
    "https://github.com/NVlabs/ffhq-dataset",
)


def choose_variant(root: Path, image_size: int) -> Path:
    """``root`` itself when it holds images, else its best variant folder for ``image_size``."""
    variants = {
        int(m.group(1)): root / m.group(0) for m in map(_VARIANT.match, os.listdir(root)) if m and (root / m.group(0)).is_dir()
    }
    if not variants:
        return root
    large_enough = [size for size in variants if size >= image_size]
    return variants[min(large_enough) if large_enough else max(variants)]


def list_ffhq(folder: Path) -> list[tuple[int, Path]]:
    """(image number, path) of every PNG in ``folder`` and its numbered sub-folders, by number."""
    found: dict[int, Path] = {}
    for directory in [folder] + sorted(p for p in folder.iterdir() if p.is_dir() and _SUBFOLDER.match(p.name)):
        for entry in os.scandir(directory):
            if not entry.name.lower().endswith(".png"):
                continue
            match = _IMAGE.match(entry.name)
            if match is None:
                raise DataError(f"{entry.path}: not an FFHQ image name; expected a five-digit number such as 00042.png")
            number = int(match.group(1))
            if number in found:
                raise DataError(f"{entry.path}: image {number} is also at {found[number]}")
            found[number] = Path(entry.path)
    if not found:
        raise DISTRIBUTION.missing(folder / "00000" / "00000.png")
    return sorted(found.items())


class FFHQ(DatasetSource):
    """FFHQ faces from the official PNG folders; split by image number."""

    @dataclass
    class Config(DataSourceConfig):
        image_size: int = 64
        #: Images numbered from here on form the test split.
        test_start: int = 60000
        #: Optional CSV of 0/1 attributes (relative to root, or absolute); see the module docs.
        attributes_csv: str | None = None

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0 < self.test_start < NUM_IMAGES:
                raise ValueError(f"test_start must be between 1 and {NUM_IMAGES - 1}")

    def expected_size(self, split: str) -> int | None:
        return self.config.test_start if split == "train" else NUM_IMAGES - self.config.test_start

    def load(self, split: str) -> LabeledImages:
        root = DISTRIBUTION.root(self.config.root)
        images = list_ffhq(choose_variant(root, self.config.image_size))
        if self.config.attributes_csv is None:
            names, attributes = [], torch.zeros(len(images), 0)
        else:
            csv_path = root / Path(self.config.attributes_csv).expanduser()
            if not csv_path.is_file():
                raise DataError(f"{csv_path}: no such attributes CSV (data.attributes_csv)")
            names, attributes = read_attributes_csv(csv_path, [path.name for _, path in images])
        keep = [i for i, (number, _) in enumerate(images) if (number >= self.config.test_start) == (split == "test")]
        if not keep:
            raise DataError(
                f"{root}: no {split} images (numbered {self._range(split)}); the copy holds images {images[0][0]:05d}..{images[-1][0]:05d}"
            )
        return ImageFiles([images[i][1] for i in keep], names, attributes[keep], channels=3, image_size=self.config.image_size)

    def _range(self, split: str) -> str:
        start = self.config.test_start
        return f"00000..{start - 1:05d}" if split == "train" else f"{start:05d}..{NUM_IMAGES - 1:05d}"


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("ffhq", FFHQ)
