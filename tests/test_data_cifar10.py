"""cifar10: the official python-version batches, written as Python 2 wrote them (protocol 2,
byte-string keys, ``numpy.core.multiarray._reconstruct``), and the restricted unpickler."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from protodiff.cli import main
from protodiff.data.cifar10 import CIFAR10, FOLDER
from protodiff.errors import DataError

NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_BATCH = 2


class Py2Pickler(pickle._Pickler):
    """Pickles the way Python 2's cPickle wrote the CIFAR files: every str and bytes as a byte
    string (BINSTRING), numpy globals under their Python 2 era module ``numpy.core.multiarray``."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + len(data).to_bytes(4, "little") + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None) -> None:
        module = obj.__module__.replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)


def py2_pickle(obj, path: Path) -> None:
    with open(path, "wb") as handle:
        Py2Pickler(handle, protocol=2).dump(obj)


def batch(labels: list[int], seed: int) -> dict:
    data = np.random.default_rng(seed).integers(0, 256, size=(len(labels), 3072), dtype=np.uint8)
    return {
        "batch_label": f"batch {seed}",
        "labels": labels,
        "data": data,
        "filenames": [f"img{i}.png" for i in range(len(labels))],
    }


def write_cifar(root: Path, writer=py2_pickle) -> dict[str, dict]:
    folder = root / FOLDER
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": batch([(i + j) % 10 for j in range(PER_BATCH)], i) for i in range(1, 6)}
    batches["test_batch"] = batch([9, 0, 4], 6)
    for name, content in batches.items():
        writer(content, folder / name)
    writer({"num_cases_per_batch": PER_BATCH, "label_names": NAMES, "num_vis": 3072}, folder / "batches.meta")
    return batches


def source(root: Path, **options) -> CIFAR10:
    return CIFAR10(CIFAR10.Config(root=str(root), **options))


def test_py2_fixture_is_in_the_official_format(tmp_path: Path):
    write_cifar(tmp_path)
    raw = (tmp_path / FOLDER / "test_batch").read_bytes()
    assert raw.startswith(b"\x80\x02") and b"cnumpy.core.multiarray\n_reconstruct\n" in raw and b"_codecs" not in raw
    assert pickle.loads(raw, encoding="bytes")[b"labels"] == [9, 0, 4]


def test_loads_batches_with_channel_major_pixels(tmp_path: Path):
    batches = write_cifar(tmp_path)
    train, test = source(tmp_path).open("train"), source(tmp_path).open("test")
    assert (len(train), len(test)) == (5 * PER_BATCH, 3)
    assert train.attribute_names == NAMES and test.labels.tolist() == [9, 0, 4]
    image, attributes = test[1]
    pixels = batches["test_batch"]["data"][1].reshape(3, 32, 32)  # 1024 red, 1024 green, 1024 blue
    assert image.shape == (3, 32, 32)
    assert torch.allclose(image, torch.from_numpy(pixels.astype(np.float32)) / 127.5 - 1)
    assert attributes.tolist() == [1.0] + [0.0] * 9
    assert train.labels.tolist() == [(i + j) % 10 for i in range(1, 6) for j in range(PER_BATCH)]


def test_root_may_be_the_batches_folder_and_python3_repickles_load(tmp_path: Path):
    def py3_pickle(obj, path: Path) -> None:
        path.write_bytes(pickle.dumps({k.encode(): v for k, v in obj.items()}, protocol=2))

    write_cifar(tmp_path, writer=py3_pickle)
    data = source(tmp_path / FOLDER, image_size=16).open("test")
    assert data[0][0].shape == (3, 16, 16) and data.labels.tolist() == [9, 0, 4]


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path):
    write_cifar(tmp_path)
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / FOLDER / "test_batch").write_bytes(pickle.dumps({b"data": Exploit()}, protocol=2))
    with pytest.raises(
        DataError, match=r"test_batch: refused to unpickle: it calls __builtin__.getattr, which no CIFAR-10 batch does"
    ):
        source(tmp_path).open("test")
    assert not marker.exists()


def test_truncated_and_malformed_batches_name_the_file(tmp_path: Path):
    batches = write_cifar(tmp_path)
    path = tmp_path / FOLDER / "data_batch_3"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match=r"data_batch_3: not a readable CIFAR-10 pickle .*truncated or corrupt"):
        source(tmp_path).open("train")
    py2_pickle({"data": batches["data_batch_3"]["data"]}, path)
    with pytest.raises(DataError, match=r"data_batch_3: no 'labels' entry \(found data\)"):
        source(tmp_path).open("train")
    py2_pickle({**batches["data_batch_3"], "labels": [1, 10]}, path)
    with pytest.raises(DataError, match="data_batch_3: label 10 at index 1 is not a class 0..9"):
        source(tmp_path).open("train")
    py2_pickle({**batches["data_batch_3"], "data": np.zeros((2, 100), np.uint8)}, path)
    with pytest.raises(
        DataError,
        match=r"data_batch_3: 'data' must be a uint8 array of shape \(N, 3072\), found a uint8 array of shape \(2, 100\)",
    ):
        source(tmp_path).open("train")


def test_missing_files_name_the_layout_and_url(tmp_path: Path):
    with pytest.raises(DataError, match=rf"{FOLDER}: missing; cifar10 expects .*www.cs.toronto.edu/~kriz/cifar.html"):
        source(tmp_path).open("train")
    write_cifar(tmp_path)
    (tmp_path / FOLDER / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5: missing"):
        source(tmp_path).open("train")


def test_check_command(tmp_path: Path):
    write_cifar(tmp_path)
    result = CliRunner().invoke(main, ["data", "check", "cifar10", "--data-root", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "train: 10 images of 3x32x32 (the official split has 50000" in result.output
    assert re.search(r"\n  truck +0\.000 +0\.333\n", result.output)
    (tmp_path / FOLDER / "test_batch").write_bytes(b"\x80\x02}q\x00")
    result = CliRunner().invoke(main, ["data", "check", "cifar10", "--data-root", str(tmp_path)])
    assert result.exit_code == 2 and result.output.strip().splitlines()[-1].startswith("protodiff: error: ")
    assert "test_batch: not a readable CIFAR-10 pickle" in result.output
