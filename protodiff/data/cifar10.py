"""``cifar10``: CIFAR-10 read from the official "python version" pickles.

Layout: ``root`` is the extracted ``cifar-10-batches-py/`` folder or the folder holding it
(https://www.cs.toronto.edu/~kriz/cifar.html, ``cifar-10-python.tar.gz``)::

    cifar-10-batches-py/
      data_batch_1 ... data_batch_5    10,000 training images each
      test_batch                       10,000 test images
      batches.meta                     the class names

Each batch is a Python 2 pickle of a dict: ``b"data"`` a uint8 array (N, 3072) of 32x32 images,
channel-major (1024 red, 1024 green, 1024 blue), and ``b"labels"`` a list of N classes 0..9.
Unpickling can run arbitrary code, so the batches are read with an unpickler that can build only
numpy arrays: a tampered file fails with an error instead of executing anything.

Images are 32 px, resized only when ``image_size`` differs (bicubic, as Patronus). Attributes: the
10 classes one-vs-rest; the split's ``labels`` holds the integer class.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, LabeledImages
from protodiff.data.official import ClassImages, Distribution
from protodiff.errors import DataError

try:  # numpy >= 2 (1.26 ships it too, for reading numpy 2 pickles)
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy < 1.26
    from numpy.core.multiarray import _reconstruct

FOLDER = "cifar-10-batches-py"
_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
_SIZES = {"train": 50000, "test": 10000}
_PIXELS = 3 * 32 * 32
_NUM_CLASSES = 10

DISTRIBUTION = Distribution(
    "cifar10",
    f"{FOLDER}/ with data_batch_1..data_batch_5, test_batch and batches.meta (the python version)",
    "https://www.cs.toronto.edu/~kriz/cifar.html",
)

#: Every global a CIFAR batch may name: numpy's array reconstruction, and ``_codecs.encode``,
#: which is how Python 3 writes bytes at pickle protocol 2 (copies re-pickled by Python 3).
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _ForbiddenGlobal(f"{module}.{name}") from None


def read_pickle(path: Path) -> dict[str, Any]:
    """A CIFAR pickle as a dict with str keys, read with the restricted unpickler."""
    try:
        with open(path, "rb") as handle:
            content = _ArraysOnlyUnpickler(handle, encoding="bytes").load()
    except FileNotFoundError:
        raise DISTRIBUTION.missing(path) from None
    except _ForbiddenGlobal as exc:
        raise DataError(
            f"{path}: refused to unpickle: it calls {exc}, which no CIFAR-10 batch does (only numpy arrays, lists and numbers)"
        ) from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, OSError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{path}: not a readable CIFAR-10 pickle ({detail}); the file may be truncated or corrupt") from None
    if not isinstance(content, dict):
        raise DataError(f"{path}: expected a pickled dict, found {type(content).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in content.items()}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 and labels (N,) of one batch file."""
    batch = read_pickle(path)
    for key in ("data", "labels"):
        if key not in batch:
            raise DataError(f"{path}: no {key!r} entry (found {', '.join(sorted(batch)) or 'none'})")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _PIXELS:
        found = f"a {data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {_PIXELS}), found {found}")
    if not isinstance(labels, list) or len(labels) != len(data):
        found = f"{len(labels)} labels" if isinstance(labels, list) else type(labels).__name__
        raise DataError(f"{path}: 'labels' must be a list of one class per image: {len(data)} images, found {found}")
    bad = next((i for i, v in enumerate(labels) if not (isinstance(v, int) and 0 <= v < _NUM_CLASSES)), None)
    if bad is not None:
        raise DataError(f"{path}: label {labels[bad]!r} at index {bad} is not a class 0..{_NUM_CLASSES - 1}")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels, dtype=np.int64)


def read_class_names(path: Path) -> list[str]:
    names = read_pickle(path).get("label_names")
    if not isinstance(names, list) or len(names) != _NUM_CLASSES:
        raise DataError(f"{path}: expected 'label_names', a list of {_NUM_CLASSES} class names")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


class CIFAR10(DatasetSource):
    """CIFAR-10 (32 px colour, 10 classes) from the official python pickles."""

    def expected_size(self, split: str) -> int | None:
        return _SIZES[split]

    def load(self, split: str) -> LabeledImages:
        root = DISTRIBUTION.root(self.config.root)
        folder = root if (root / "batches.meta").exists() else root / FOLDER
        if not folder.is_dir():
            raise DISTRIBUTION.missing(folder)
        names = read_class_names(folder / "batches.meta")
        parts = [read_batch(folder / name) for name in _BATCHES[split]]
        pixels = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        return ClassImages(pixels, labels, names, self.config.image_size)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("cifar10", CIFAR10)
