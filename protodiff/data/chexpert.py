"""``chexpert``: CheXpert chest radiographs with the 14 observations as binary attributes.

Layout (https://stanfordmlgroup.github.io/competitions/chexpert/): ``root`` is the extracted
``CheXpert-v1.0-small/`` folder (or the full-resolution ``CheXpert-v1.0/``), or the folder holding
it; given both, the small copy is read up to 320 px::

    CheXpert-v1.0-small/
      train.csv   valid.csv
      train/patient00001/study1/view1_frontal.jpg ...
      valid/patient64541/study1/view1_frontal.jpg ...

The CSVs have the columns ``Path,Sex,Age,Frontal/Lateral,AP/PA`` and then the 14 observations.
``Path`` starts with the release folder's name (``CheXpert-v1.0-small/train/...``); that first
part is replaced by the folder actually found, so a renamed copy still reads.

Splits: ``train`` is train.csv; ``test`` is valid.csv, the radiologist-labelled official
validation set (the official test set is not part of the v1.0 distribution), used as the held-out
split as is usual.

Attribute policy, per observation: 1.0 -> 1, 0.0 -> 0, blank (not mentioned in the report) -> 0,
and -1.0 (uncertain) -> ``uncertain``: ``zeros`` (default) or ``ones``, the U-Zeros and U-Ones
policies of the CheXpert paper (Irvin et al., 2019). ``frontal_only`` (default) keeps the frontal
views: lateral views are a different image distribution that a generative model would otherwise
have to cover too.

Images are grey, resized straight to ``image_size`` (224) bicubic without crop, as Patronus.
Images are opened only when read; a missing one is reported with the CSV line that lists it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.data.official import Distribution, ImageFiles
from protodiff.errors import DataError

OBSERVATIONS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)  # fmt: skip
SMALL, FULL = "CheXpert-v1.0-small", "CheXpert-v1.0"
_SMALL_SIDE = 320  # the small release's images are at most this many pixels on a side
_CSV = {"train": "train.csv", "test": "valid.csv"}
_VIEW = "Frontal/Lateral"
_VALUES = {"1.0": 1.0, "1": 1.0, "0.0": 0.0, "0": 0.0, "": 0.0}
_UNCERTAIN = ("-1.0", "-1")

DISTRIBUTION = Distribution(
    "chexpert",
    "CheXpert-v1.0-small/ (or CheXpert-v1.0/) with train.csv, valid.csv and the train/ and valid/ image folders",
    "https://stanfordmlgroup.github.io/competitions/chexpert/",
)


def find_release(root: Path, image_size: int) -> Path:
    """The release folder: ``root`` itself if it holds train.csv, else the fitting release inside."""
    if (root / "train.csv").exists():
        return root
    has_small, has_full = ((root / name / "train.csv").exists() for name in (SMALL, FULL))
    if not (has_small or has_full):
        raise DISTRIBUTION.missing(root / SMALL / "train.csv")
    return root / (FULL if has_full and (not has_small or image_size > _SMALL_SIDE) else SMALL)


def read_labels(path: Path, uncertain: float, frontal_only: bool) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Image paths (as written), (N, 14) attribute rows and CSV line numbers of the kept rows."""
    values = {**_VALUES, **dict.fromkeys(_UNCERTAIN, uncertain)}
    paths, rows, lines = [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            needed = ["Path", *OBSERVATIONS] + ([_VIEW] if frontal_only else [])
            absent = [name for name in needed if name not in header]
            if absent:
                raise DataError(
                    f"{path}:1: missing column(s) {', '.join(repr(a) for a in absent)}; expected the official header Path,Sex,Age,{_VIEW},AP/PA,{','.join(OBSERVATIONS)}"
                )
            path_col, view_col = header.index("Path"), header.index(_VIEW) if frontal_only else -1
            columns = [header.index(name) for name in OBSERVATIONS]
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise DataError(f"{path}:{reader.line_num}: {len(row)} fields, the header has {len(header)}")
                if frontal_only:
                    if row[view_col] not in ("Frontal", "Lateral"):
                        raise DataError(f"{path}:{reader.line_num}: {_VIEW} is {row[view_col]!r}, expected Frontal or Lateral")
                    if row[view_col] == "Lateral":
                        continue
                try:
                    rows.append([values[row[col].strip()] for col in columns])
                except KeyError as exc:
                    name = OBSERVATIONS[[row[col].strip() for col in columns].index(exc.args[0])]
                    raise DataError(
                        f"{path}:{reader.line_num}: {name!r} is {exc.args[0]!r}, expected 1.0, 0.0, -1.0 or blank"
                    ) from None
                paths.append(row[path_col])
                lines.append(reader.line_num)
    except FileNotFoundError:
        raise DISTRIBUTION.missing(path) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({' '.join(str(exc).split())})") from None
    if not paths:
        raise DataError(f"{path}: no {'frontal ' if frontal_only else ''}images listed")
    return paths, np.array(rows, dtype=np.float32), np.array(lines)


def resolve(release: Path, listed: str) -> Path:
    """A CSV path (``CheXpert-v1.0-small/train/...``) inside the release folder actually found."""
    first, _, rest = listed.partition("/")
    return release / rest if first.startswith("CheXpert-v1.0") else release / listed


class CheXpert(DatasetSource):
    """CheXpert chest X-rays (1 channel) with the 14 observations under a stated uncertainty policy."""

    @dataclass
    class Config(DataSourceConfig):
        image_size: int = 224
        #: What an uncertain (-1) label becomes: ``zeros`` (U-Zeros) or ``ones`` (U-Ones).
        uncertain: Literal["zeros", "ones"] = "zeros"
        #: Keep only frontal views.
        frontal_only: bool = True

    @property
    def channels(self) -> int:
        return 1

    def load(self, split: str) -> LabeledImages:
        release = find_release(DISTRIBUTION.root(self.config.root), self.config.image_size)
        csv_path = release / _CSV[split]
        listed, rows, lines = read_labels(csv_path, 1.0 if self.config.uncertain == "ones" else 0.0, self.config.frontal_only)
        return ImageFiles(
            [resolve(release, p) for p in listed],
            OBSERVATIONS,
            torch.from_numpy(rows),
            channels=1,
            image_size=self.config.image_size,
            listed_in=(csv_path, lines),
        )


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("chexpert", CheXpert)
