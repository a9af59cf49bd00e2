"""fmnist: the four official idx files, gzipped or not, written byte for byte in tmp_path."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from protodiff._registry.manager import registries
from protodiff.cli import main
from protodiff.data.fmnist import CLASSES, FashionMNIST
from protodiff.errors import DataError

TRAIN_LABELS = [3, 0, 9, 3, 7]
TEST_LABELS = [1, 2, 8]


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format: 0, 0, type 0x08 (ubyte), ndim, big-endian uint32 sizes, then the bytes."""
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_fmnist(root: Path, gz: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    images = {}
    for prefix, labels in (("train", TRAIN_LABELS), ("t10k", TEST_LABELS)):
        images[prefix] = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        for kind, array in (("images-idx3", images[prefix]), ("labels-idx1", np.array(labels))):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(array)
            if gz:
                (root / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (root / name).write_bytes(data)
    return images


def source(root: Path, **options) -> FashionMNIST:
    return FashionMNIST(FashionMNIST.Config(root=str(root), **options))


def check(*args: str):
    return CliRunner().invoke(main, ["data", "check", "fmnist", *args])


@pytest.mark.parametrize("gz", [True, False])
def test_loads_official_idx_files(tmp_path: Path, gz: bool):
    write_fmnist(tmp_path, gz=gz)
    train, test = source(tmp_path).open("train"), source(tmp_path).open("test")
    assert (len(train), len(test)) == (5, 3)
    image, attributes = train[0]
    assert image.shape == (1, 32, 32) and image.min() >= -1 and image.max() <= 1
    assert train.attribute_names == list(CLASSES)
    assert train.labels.tolist() == TRAIN_LABELS
    assert torch.equal(attributes, torch.nn.functional.one_hot(torch.tensor(3), 10).float())
    assert torch.equal(train.attributes().argmax(1), train.labels)


def test_torchvision_folder_layout(tmp_path: Path):
    write_fmnist(tmp_path / "FashionMNIST" / "raw")
    assert len(source(tmp_path).open("test")) == 3


def test_pad_keeps_the_28_pixels_and_adds_a_black_border(tmp_path: Path):
    images = write_fmnist(tmp_path)
    image, _ = source(tmp_path, fit="pad").open("train")[1]
    assert torch.all(image[0, :2] == -1) and torch.all(image[0, :, -2:] == -1)
    expected = torch.from_numpy(images["train"][1].astype(np.float32)) / 127.5 - 1
    assert torch.allclose(image[0, 2:30, 2:30], expected)


def test_limit_is_a_deterministic_subset_that_keeps_class_labels(tmp_path: Path):
    write_fmnist(tmp_path)
    first = source(tmp_path, limit=3, subset_seed=1).open("train")
    again = source(tmp_path, limit=3, subset_seed=1).open("train")
    assert len(first) == 3 and torch.equal(first.labels, again.labels)
    assert torch.equal(first[0][0], again[0][0])
    assert torch.equal(first.attributes().argmax(1), first.labels)


def test_registered():
    assert registries().dataset.get("fmnist") is FashionMNIST


def test_missing_root_and_file_name_the_layout_and_url(tmp_path: Path):
    with pytest.raises(DataError, match="no such directory.*t10k-images-idx3-ubyte.*zalandoresearch"):
        source(tmp_path / "absent").open("train")
    write_fmnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte: missing; .*github.com/zalandoresearch/fashion-mnist"):
        source(tmp_path).open("test")


def test_truncated_data_names_the_file_and_what_is_short(tmp_path: Path):
    write_fmnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(
        DataError,
        match=r"train-images-idx3-ubyte: truncated: the header promises 5x28x28 = 3920 bytes of data, the file has 3820",
    ):
        source(tmp_path).open("train")
    path.write_bytes(b"\0\0\x08")
    with pytest.raises(DataError, match="truncated: 3 bytes, shorter than the 16-byte idx header"):
        source(tmp_path).open("train")


def test_truncated_gzip_names_the_file(tmp_path: Path):
    write_fmnist(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: cannot read .*truncated"):
        source(tmp_path).open("train")


def test_wrong_header_and_mismatched_files(tmp_path: Path):
    write_fmnist(tmp_path, gz=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((3, 2))))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: not an idx file of 1-dimensional unsigned bytes"):
        source(tmp_path).open("test")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 2])))
    with pytest.raises(DataError, match="2 labels for the 3 images"):
        source(tmp_path).open("test")
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.array([1, 12, 2])))
    with pytest.raises(DataError, match="label 12 at index 1 is not a class 0..9"):
        source(tmp_path).open("test")


def test_check_command_reports_counts_shape_and_balance(tmp_path: Path):
    write_fmnist(tmp_path)
    result = check("--data-root", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "train: 5 images of 1x32x32 (the official split has 60000" in result.output
    assert "test: 3 images of 1x32x32" in result.output
    assert re.search(r"\n  tshirt_top +0\.200 +0\.000\n", result.output)  # 1 of 5 train images, 0 of 3 test images
    result = check("--data-root", str(tmp_path), "--split", "test", "--image-size", "28", "--limit", "2")
    assert result.exit_code == 0 and "test: 2 images of 1x28x28\n" in result.output and "train:" not in result.output


def test_check_command_fails_with_one_line(tmp_path: Path):
    write_fmnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-1]))
    result = check("--data-root", str(tmp_path))
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("protodiff: error: ") and "t10k-images-idx3-ubyte.gz: truncated" in last
