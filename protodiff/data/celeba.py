"""``celeba``: CelebA's aligned faces with their 40 binary attributes and official split.

Layout under ``root`` (https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html), either flat as
torchvision extracts it or in the official ``Img/``, ``Anno/``, ``Eval/`` folders::

    img_align_celeba/000001.jpg ... 202599.jpg      (or Img/img_align_celeba/)
    list_attr_celeba.txt                            (or Anno/list_attr_celeba.txt)
    list_eval_partition.txt                         (or Eval/list_eval_partition.txt)

``list_attr_celeba.txt`` holds the image count, then the 40 attribute names (5_o_Clock_Shadow ...
Young), then one ``filename v1 ... v40`` row per image with values -1/1, mapped to 0/1.
``list_eval_partition.txt`` assigns each image to 0 = train (162,770), 1 = valid (19,867) or
2 = test (19,962): the splits ``train``, ``valid`` and ``test``.

Preprocessing (``crop``):

* ``none`` (default): the whole 178x218 image resized straight to ``image_size`` (64) bicubic,
  without crop or flip, as Patronus (nina-weng/patronus ``train/transform_config.py``).
* ``center``: the central 178x178 square, then resized: InfoDiffusion's default
  (isjakewong/InfoDiffusion ``data.py``, ``get_celeba``: ``Resize(64)`` + ``CenterCrop(64)``).
* ``d2c``: the 128x128 box centred at (x=89, y=121), then resized: the D2C crop that
  InfoDiffusion offers (``crop_d2c``) and DiffAE always uses for CelebA.

The attribute file (200k lines) is parsed with numpy in well under a second, and the image folder
is listed once so that a split-file entry without its image is reported at load time.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.official import Distribution, ImageFiles
from protodiff.errors import DataError

IMAGES = "img_align_celeba"
ATTRIBUTES = "list_attr_celeba.txt"
PARTITION = "list_eval_partition.txt"
_SPLIT_IDS = {"train": 0, "valid": 1, "test": 2}
_SIZES = {"train": 162770, "valid": 19867, "test": 19962}
#: D2C's crop box (left, top, right, bottom) on the 178x218 aligned images: 128 px around (89, 121).
D2C_BOX = (89 - 64, 121 - 64, 89 + 64, 121 + 64)

DISTRIBUTION = Distribution(
    "celeba",
    f"{IMAGES}/, {ATTRIBUTES} and {PARTITION} (flat, or in the official Img/, Anno/ and Eval/ folders)",
    "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html",
)


def read_attribute_file(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Attribute names, filenames and an (N, 40) 0/1 uint8 array from ``list_attr_celeba.txt``."""
    lines = _read_text(path).split("\n", 2)
    if len(lines) < 3 or not lines[0].strip().isdigit():
        raise DataError(f"{path}:1: expected the number of images, then a line of attribute names, then one row per image")
    count, names, body = int(lines[0]), lines[1].split(), lines[2]
    filenames = re.findall(r"^\S+", body, flags=re.MULTILINE)
    with warnings.catch_warnings():  # numpy warns when text stops parsing; the count check reports it
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(re.sub(r"^\S+", "", body, flags=re.MULTILINE), dtype=np.int8, sep=" ")
    if values.size != len(filenames) * len(names):
        raise _bad_row(path, body, len(names))
    values = values.reshape(len(filenames), len(names))
    bad = np.flatnonzero((values != 1) & (values != -1))
    if len(bad):
        row, column = divmod(int(bad[0]), len(names))
        raise DataError(f"{path}:{row_line(path, row)}: attribute {names[column]!r} is {values[row, column]}, expected -1 or 1")
    if len(filenames) != count:
        raise DataError(f"{path}:1: announces {count} images but has {len(filenames)} rows")
    return names, filenames, (values > 0).astype(np.uint8)


def row_line(path: Path, row: int) -> int:
    """The line number of image row ``row`` of the attribute file (only needed for error messages)."""
    rows = (line_no for line_no, line in enumerate(_read_text(path).split("\n")[2:], start=3) if line.strip())
    return next((line_no for i, line_no in enumerate(rows) if i == row), row + 3)


def _bad_row(path: Path, body: str, num_attributes: int) -> DataError:
    """The error for the first row that is not a filename and ``num_attributes`` values of -1/1."""
    for line_no, line in enumerate(body.split("\n"), start=3):
        fields = line.split()
        if fields and (len(fields) != num_attributes + 1 or any(v not in ("1", "-1") for v in fields[1:])):
            return DataError(
                f"{path}:{line_no}: expected a filename and {num_attributes} values of -1 or 1, got {line.strip()!r}"
            )
    return DataError(f"{path}: cannot parse the attribute rows")


def read_partition_file(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Filenames, their split ids (0/1/2) and line numbers from ``list_eval_partition.txt``."""
    filenames, splits, line_numbers = [], [], []
    for line_no, line in enumerate(_read_text(path).split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(
                f"{path}:{line_no}: expected 'filename split' with split 0 (train), 1 (valid) or 2 (test), got {line.strip()!r}"
            )
        filenames.append(fields[0])
        splits.append(int(fields[1]))
        line_numbers.append(line_no)
    return filenames, np.array(splits, dtype=np.int8), np.array(line_numbers)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None


def _center_square(image: Image.Image) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _d2c_crop(image: Image.Image) -> Image.Image:
    if image.width < D2C_BOX[2] or image.height < D2C_BOX[3]:
        raise ValueError(f"the image is {image.width}x{image.height}; the d2c crop needs CelebA's aligned 178x218 images")
    return image.crop(D2C_BOX)


_CROPS = {"none": None, "center": _center_square, "d2c": _d2c_crop}


class CelebA(DatasetSource):
    """CelebA aligned faces, 40 binary attributes, the official train/valid/test partition."""

    splits = ("train", "valid", "test")

    @dataclass
    class Config(DataSourceConfig):
        image_size: int = 64
        #: ``none`` (Patronus), ``center`` (InfoDiffusion's default) or ``d2c`` (DiffAE, InfoDiffusion option).
        crop: Literal["none", "center", "d2c"] = "none"

    def expected_size(self, split: str) -> int | None:
        return _SIZES[split]

    def load(self, split: str) -> LabeledImages:
        root = DISTRIBUTION.root(self.config.root)
        images = DISTRIBUTION.find(root, [IMAGES, f"Img/{IMAGES}"])
        if not images.is_dir():
            raise DISTRIBUTION.missing(images)
        attributes_path = DISTRIBUTION.find(root, [ATTRIBUTES, f"Anno/{ATTRIBUTES}"])
        partition_path = DISTRIBUTION.find(root, [PARTITION, f"Eval/{PARTITION}"])
        names, attr_files, values = read_attribute_file(attributes_path)
        part_files, part_ids, part_lines = read_partition_file(partition_path)
        row_of = {name: row for row, name in enumerate(attr_files)}
        if len(row_of) != len(attr_files):
            duplicate = next(f for i, f in enumerate(attr_files) if row_of[f] != i)
            raise DataError(f"{attributes_path}:{row_line(attributes_path, row_of[duplicate])}: a second row for {duplicate}")
        unlisted = set(attr_files).difference(part_files)
        if unlisted:
            first = min(unlisted, key=row_of.__getitem__)
            raise DataError(
                f"{attributes_path}:{row_line(attributes_path, row_of[first])}: {first} is in no split of {partition_path} ({len(unlisted)} such images)"
            )
        present = set(os.listdir(images))
        keep = np.flatnonzero(part_ids == _SPLIT_IDS[split])
        rows = []
        for index in keep.tolist():
            filename = part_files[index]
            if filename not in row_of:
                raise DataError(f"{partition_path}:{part_lines[index]}: {filename} has no row in {attributes_path}")
            if filename not in present:
                raise DataError(
                    f"{partition_path}:{part_lines[index]}: {filename} is not in {images}; the image folder is incomplete"
                )
            rows.append(row_of[filename])
        return ImageFiles(
            [images / part_files[i] for i in keep.tolist()],
            names,
            torch.from_numpy(values[rows]).float(),
            channels=3,
            image_size=self.config.image_size,
            listed_in=(partition_path, part_lines[keep]),
            prepare=_CROPS[self.config.crop],
        )


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("celeba", CelebA)
