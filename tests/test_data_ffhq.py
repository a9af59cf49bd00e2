"""ffhq: the official NNNNN/NNNNN.png folders (one per variant), split by image number."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from protodiff.cli import main
from protodiff.data.ffhq import FFHQ
from protodiff.errors import DataError

NUMBERS = [0, 1, 1500, 60000, 69999]  # three train images, two test images


def write_ffhq(folder: Path, size: int = 16, grey: int | None = None, nested: bool = True) -> None:
    rng = np.random.default_rng(0)
    for number in NUMBERS:
        directory = folder / f"{number // 1000 * 1000:05d}" if nested else folder
        directory.mkdir(parents=True, exist_ok=True)
        pixels = (
            np.full((size, size, 3), grey, np.uint8)
            if grey is not None
            else rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        )
        Image.fromarray(pixels).save(directory / f"{number:05d}.png")


def source(root: Path, **options) -> FFHQ:
    return FFHQ(FFHQ.Config(root=str(root), **options))


@pytest.mark.parametrize("nested", [True, False])
def test_split_by_image_number_without_attributes(tmp_path: Path, nested: bool):
    write_ffhq(tmp_path, nested=nested)
    train, test = source(tmp_path).open("train"), source(tmp_path).open("test")
    assert (len(train), len(test)) == (3, 2)
    assert [p.name for p in test.paths] == ["60000.png", "69999.png"]
    image, attributes = train[2]
    assert image.shape == (3, 64, 64) and image.min() >= -1 and image.max() <= 1
    assert attributes.shape == (0,) and train.attributes().shape == (3, 0) and train.attribute_names == []
    assert len(source(tmp_path, test_start=1000).open("train")) == 2


def test_dataset_folder_picks_the_smallest_variant_large_enough(tmp_path: Path):
    write_ffhq(tmp_path / "thumbnails128x128", grey=0)
    write_ffhq(tmp_path / "images1024x1024", grey=255)  # stands in for the 1024 px originals
    assert source(tmp_path, image_size=64).open("train")[0][0].max() == -1
    assert source(tmp_path, image_size=256).open("train")[0][0].min() == 1


def test_attributes_csv(tmp_path: Path):
    write_ffhq(tmp_path)
    rows = "".join(f"{n:05d}.png,{n % 2},{int(n >= 1000)}\n" for n in NUMBERS)
    (tmp_path / "attributes.csv").write_text("filename,odd,late\n" + rows)
    train = source(tmp_path, attributes_csv="attributes.csv").open("train")
    assert train.attribute_names == ["odd", "late"]
    assert train.attributes().tolist() == [[0, 0], [1, 0], [0, 1]]
    assert torch.equal(train[1][1], torch.tensor([1.0, 0.0]))
    (tmp_path / "attributes.csv").write_text("filename,odd,late\n" + rows.replace("00001.png,1,0\n", ""))
    with pytest.raises(DataError, match=r"attributes.csv: no row for image '00001.png'"):
        source(tmp_path, attributes_csv="attributes.csv").open("test")
    with pytest.raises(DataError, match=r"absent.csv: no such attributes CSV"):
        source(tmp_path, attributes_csv="absent.csv").open("test")


def test_bad_names_corrupt_images_and_empty_splits(tmp_path: Path):
    with pytest.raises(DataError, match=r"00000/00000.png: missing; ffhq expects .*github.com/NVlabs/ffhq-dataset"):
        source(tmp_path).open("train")
    write_ffhq(tmp_path)
    (tmp_path / "01000" / "01500.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(DataError, match=r"01000/01500.png: cannot read image"):
        source(tmp_path).open("train")[2]
    (tmp_path / "01000" / "01500.png").unlink()
    (tmp_path / "60000" / "60000.png").unlink()
    (tmp_path / "69000" / "69999.png").unlink()
    with pytest.raises(DataError, match=r"no test images \(numbered 60000..69999\); the copy holds images 00000..00001"):
        source(tmp_path).open("test")
    (tmp_path / "00000" / "face.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"00000/face.png: not an FFHQ image name"):
        source(tmp_path).open("train")


def test_check_command(tmp_path: Path):
    write_ffhq(tmp_path / "thumbnails128x128")
    result = CliRunner().invoke(main, ["data", "check", "ffhq", "--data-root", str(tmp_path), "--image-size", "16"])
    assert result.exit_code == 0, result.output
    assert "train: 3 images of 3x16x16 (the official split has 60000: this copy is incomplete or modified)" in result.output
    assert result.output.rstrip().endswith("attributes: none")
    (tmp_path / "thumbnails128x128" / "69000" / "69999.png").write_bytes(b"")
    result = CliRunner().invoke(main, ["data", "check", "ffhq", "--data-root", str(tmp_path), "--split", "test"])
    assert result.exit_code == 2 and re.search(r"protodiff: error: \S+69999.png: cannot read image", result.output)
