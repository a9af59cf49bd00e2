"""``folder``: your own images, with optional binary attributes from a CSV.

Layout under ``root``::

    root/
      train/  test/            optional: one sub-folder per split; otherwise the root's images are
                               split deterministically, ``test_fraction`` of them held out
      *.png|jpg|jpeg|bmp|webp  the images (sub-folders other than split folders are ignored)
      attributes.csv           optional: header ``filename,attr_a,attr_b,...``, one 0/1 row per image
      masks/<attribute>/<image stem>.png
                               optional: where ``attribute`` is in that image (any non-zero pixel
                               is inside), for the ``localisation`` metric

Filenames in the CSV are relative to the folder the images are in. Every image needs a row
when the CSV exists; extra rows for absent images are an error too, because they usually mean
the CSV belongs to another copy of the data.

Masks sit beside the images they describe (under ``train/masks/`` with split folders): one
sub-folder per attribute, named as in the CSV when there is one, holding a PNG per image that has
the attribute, named by the image's stem (``cat.jpg`` -> ``masks/ear/cat.png``), of any size: it
is resized to the image's square the way the image is (straight, no crop; nearest neighbour). An
image without a mask in ``masks/ear/`` has no ear region, which the metric reads as "absent"; a
folder without ``masks/`` has no regions at all. A mask whose stem names no image is an error.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.decode import read_image
from protodiff.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
ATTRIBUTES_FILE = "attributes.csv"
MASKS_DIR = "masks"


def list_images(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def read_attributes_csv(path: Path, filenames: list[str]) -> tuple[list[str], Tensor]:
    """Attribute names and an (N, A) 0/1 tensor aligned with ``filenames``."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "filename":
        raise DataError(f"{path}:1: expected a header 'filename,<attribute>,...'")
    names = [n.strip() for n in rows[0][1:]]
    by_file: dict[str, list[float]] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(names) + 1:
            raise DataError(
                f"{path}:{line_no}: expected {len(names) + 1} columns (filename + {len(names)} attributes), got {len(row)}"
            )
        values = []
        for name, cell in zip(names, row[1:]):
            if cell.strip() not in ("0", "1"):
                raise DataError(f"{path}:{line_no}: attribute {name!r} must be 0 or 1, got {cell!r}")
            values.append(float(cell.strip()))
        by_file[row[0].strip()] = values
    missing = [f for f in filenames if f not in by_file]
    if missing:
        raise DataError(f"{path}: no row for image {missing[0]!r} ({len(missing)} images have none); add a row per image")
    extra = sorted(set(by_file) - set(filenames))
    if extra:
        raise DataError(f"{path}: row for {extra[0]!r}, which is not an image in the folder ({len(extra)} such rows)")
    return names, torch.tensor([by_file[f] for f in filenames], dtype=torch.float32).reshape(len(filenames), len(names))


def find_masks(directory: Path, paths: list[Path], names: list[str]) -> dict[str, dict[str, Path]]:
    """Attribute -> image stem -> mask file, from ``directory/masks/<attribute>/<stem>.png``
    ({} without a ``masks`` folder). A mask folder that names no attribute of the CSV (when there
    is one) or a mask that names no image is a one-line DataError."""
    root = directory / MASKS_DIR
    if not root.is_dir():
        return {}
    stems = {p.stem for p in paths}
    found: dict[str, dict[str, Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if names and folder.name not in names:
            raise DataError(
                f"{folder}: {folder.name!r} is not an attribute of {directory / ATTRIBUTES_FILE}; "
                "name each mask folder after a column of the CSV"
            )
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
        unknown = [p for p in files if p.stem not in stems]
        if unknown:
            raise DataError(f"{unknown[0]}: no image {unknown[0].stem}.* in {directory}; a mask is named by its image's stem")
        found[folder.name] = {p.stem: p for p in files}
    return found


def read_mask(path: Path, image_size: int) -> Tensor:
    """A mask file as a boolean (image_size, image_size) tensor: resized straight, nearest
    neighbour, True where the file is non-zero."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            grey = image.convert("L").resize((image_size, image_size), resample=Image.Resampling.NEAREST)
    except FileNotFoundError:
        raise DataError(f"{path}: mask file is missing") from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: cannot read mask ({' '.join(str(exc).split())})") from None
    return torch.from_numpy(np.asarray(grey) > 0)


class FolderImages(LabeledImages):
    def __init__(
        self,
        paths: list[Path],
        names: list[str],
        labels: Tensor,
        channels: int,
        image_size: int,
        masks: dict[str, dict[str, Path]] | None = None,
    ) -> None:
        super().__init__(names, channels, image_size)
        self.paths = paths
        self.labels = labels
        self.masks = masks or {}

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return read_image(str(self.paths[index]), self.image_size, self.channels), self.labels[index]

    def attributes(self) -> Tensor:
        return self.labels

    def region_names(self) -> list[str]:
        return list(self.masks)

    def regions(self, index: int) -> dict[str, Tensor]:
        stem = self.paths[index].stem
        return {name: read_mask(files[stem], self.image_size) for name, files in self.masks.items() if stem in files}


class Folder(DatasetSource):
    """A directory of images, with attributes from ``attributes.csv`` if present."""

    @dataclass
    class Config(DataSourceConfig):
        channels: Literal[1, 3] = 3
        #: Share of the images held out as ``test`` when there are no split sub-folders.
        test_fraction: float = 0.1

        def __post_init__(self) -> None:
            super().__post_init__()
            if not 0.0 <= self.test_fraction < 1.0:
                raise ValueError("test_fraction must be in [0, 1)")

    @property
    def channels(self) -> int:
        return self.config.channels

    def load(self, split: str) -> LabeledImages:
        if self.config.root is None:
            raise DataError("folder dataset needs data.root: the directory holding your images")
        root = Path(self.config.root).expanduser()
        if not root.is_dir():
            raise DataError(f"{root}: no such directory; set data.root to the folder holding your images")
        directory = root / split if (root / "train").is_dir() else root
        if not directory.is_dir():
            raise DataError(f"{directory}: missing; a folder with a train/ sub-folder needs a {split}/ one too")
        paths = list_images(directory)
        if not paths:
            raise DataError(f"{directory}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        csv_path = directory / ATTRIBUTES_FILE
        if csv_path.exists():
            names, labels = read_attributes_csv(csv_path, [p.name for p in paths])
        else:
            names, labels = [], torch.zeros(len(paths), 0)
        if directory == root:
            keep = [i for i, p in enumerate(paths) if self._is_test(p.name) == (split == "test")]
            if not keep:
                raise DataError(f"{directory}: the {split} split is empty; add images or change test_fraction")
            paths, labels = [paths[i] for i in keep], labels[keep]
        masks = find_masks(directory, list_images(directory), names)
        return FolderImages(paths, names, labels, self.config.channels, self.config.image_size, masks)

    def _is_test(self, filename: str) -> bool:
        """A stable per-file coin: the same file lands in the same split on every machine."""
        digest = hashlib.sha256(f"{self.config.subset_seed}:{filename}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < self.config.test_fraction


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("folder", Folder)
