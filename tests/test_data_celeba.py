"""celeba: img_align_celeba/ JPEGs and the two official text files, flat and in Img/Anno/Eval/."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from protodiff.cli import main
from protodiff.data.celeba import D2C_BOX, CelebA, read_attribute_file
from protodiff.errors import DataError

OFFICIAL_NAMES = [
    "5_o_Clock_Shadow",
    "Arched_Eyebrows",
    "Attractive",
    "Bags_Under_Eyes",
    "Bald",
    "Bangs",
    "Big_Lips",
    "Big_Nose",
    "Black_Hair",
    "Blond_Hair",
    "Blurry",
    "Brown_Hair",
    "Bushy_Eyebrows",
    "Chubby",
    "Double_Chin",
    "Eyeglasses",
    "Goatee",
    "Gray_Hair",
    "Heavy_Makeup",
    "High_Cheekbones",
    "Male",
    "Mouth_Slightly_Open",
    "Mustache",
    "Narrow_Eyes",
    "No_Beard",
    "Oval_Face",
    "Pale_Skin",
    "Pointy_Nose",
    "Receding_Hairline",
    "Rosy_Cheeks",
    "Sideburns",
    "Smiling",
    "Straight_Hair",
    "Wavy_Hair",
    "Wearing_Earrings",
    "Wearing_Hat",
    "Wearing_Lipstick",
    "Wearing_Necklace",
    "Wearing_Necktie",
    "Young",
]
PARTITION = [0, 0, 0, 1, 2, 2]  # images 000001..000006: three train, one valid, two test


def attribute_text(filenames: list[str], values: np.ndarray) -> str:
    """Exactly the official layout: count, names (with a trailing space), rows of ' -1' / '  1'."""
    rows = [name + "".join(f"{v:>3}" for v in row) for name, row in zip(filenames, values)]
    return "\n".join([str(len(filenames)), " ".join(OFFICIAL_NAMES) + " ", *rows]) + "\n"


def write_celeba(root: Path, official_folders: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = root / ("Img" if official_folders else "") / "img_align_celeba"
    anno = root / ("Anno" if official_folders else "")
    evaluation = root / ("Eval" if official_folders else "")
    for folder in (images, anno, evaluation):
        folder.mkdir(parents=True, exist_ok=True)
    filenames = [f"{i:06d}.jpg" for i in range(1, len(PARTITION) + 1)]
    for name in filenames:
        Image.fromarray(rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)).save(images / name, quality=90)
    values = rng.choice([-1, 1], size=(len(filenames), len(OFFICIAL_NAMES)))
    (anno / "list_attr_celeba.txt").write_text(attribute_text(filenames, values))
    (evaluation / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(filenames, PARTITION)))
    return (values > 0).astype(np.float32)


def source(root: Path, **options) -> CelebA:
    return CelebA(CelebA.Config(root=str(root), **options))


@pytest.mark.parametrize("official_folders", [False, True])
def test_splits_attributes_and_images(tmp_path: Path, official_folders: bool):
    expected = write_celeba(tmp_path, official_folders)
    train, valid, test = (source(tmp_path).open(s) for s in ("train", "valid", "test"))
    assert (len(train), len(valid), len(test)) == (3, 1, 2)
    assert train.attribute_names == OFFICIAL_NAMES
    assert torch.equal(train.attributes(), torch.from_numpy(expected[:3]))
    assert torch.equal(test.attributes(), torch.from_numpy(expected[4:]))
    image, attributes = valid[0]
    assert image.shape == (3, 64, 64) and image.min() >= -1 and image.max() <= 1
    assert torch.equal(attributes, torch.from_numpy(expected[3]))


def test_unknown_split_lists_the_official_ones(tmp_path: Path):
    write_celeba(tmp_path)
    with pytest.raises(DataError, match="no split 'val'; choose one of train, valid, test"):
        source(tmp_path).open("val")


def test_crops(tmp_path: Path):
    write_celeba(tmp_path)
    path = tmp_path / "img_align_celeba" / "000001.jpg"
    canvas = np.zeros((218, 178, 3), np.uint8)
    left, top, right, bottom = D2C_BOX
    canvas[top:bottom, left:right] = 255  # the D2C box white, the rest black
    Image.fromarray(canvas).save(path, quality=100)
    d2c = source(tmp_path, crop="d2c").open("train")[0][0]
    assert d2c.shape == (3, 64, 64) and d2c.min() > 0.9
    whole = source(tmp_path).open("train")[0][0]
    assert whole[:, 0, 0].max() < -0.9 and whole.mean() < 0
    center = source(tmp_path, crop="center", image_size=32).open("train")[0][0]
    assert center.shape == (3, 32, 32) and center[:, 0, 0].max() < -0.9  # the central square's corner is outside the box
    Image.fromarray(canvas[:100, :100]).save(path)
    with pytest.raises(
        DataError,
        match=r"000001.jpg: cannot read image \(the image is 100x100; the d2c crop needs .*listed in .*list_eval_partition.txt line 1\)",
    ):
        source(tmp_path, crop="d2c").open("train")[0]


def test_limit_is_deterministic(tmp_path: Path):
    write_celeba(tmp_path)
    a = source(tmp_path, limit=2, subset_seed=3).open("train")
    b = source(tmp_path, limit=2, subset_seed=3).open("train")
    assert len(a) == 2 and torch.equal(a.attributes(), b.attributes()) and torch.equal(a[1][0], b[1][0])


def test_missing_root_and_files_name_the_layout_and_url(tmp_path: Path):
    with pytest.raises(DataError, match=r"celeba needs data.root .*img_align_celeba/.*mmlab.ie.cuhk.edu.hk/projects/CelebA.html"):
        CelebA(CelebA.Config()).open("train")
    write_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(
        DataError, match=r"list_eval_partition.txt: missing; celeba expects .*Eval/ folders\); get it from https://mmlab"
    ):
        source(tmp_path).open("train")


def test_partition_referencing_an_absent_image_names_the_line(tmp_path: Path):
    write_celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "000005.jpg").unlink()
    with pytest.raises(
        DataError, match=r"list_eval_partition.txt:5: 000005.jpg is not in .*img_align_celeba; the image folder is incomplete"
    ):
        source(tmp_path).open("test")
    assert len(source(tmp_path).open("train")) == 3  # other splits are unaffected


def test_corrupt_image_names_the_file_and_its_line(tmp_path: Path):
    write_celeba(tmp_path)
    path = tmp_path / "img_align_celeba" / "000002.jpg"
    path.write_bytes(path.read_bytes()[:300])
    data = source(tmp_path).open("train")
    with pytest.raises(DataError, match=r"000002.jpg: cannot read image \(.*\) \(listed in .*list_eval_partition.txt line 2\)"):
        data[1]


def test_malformed_text_files_name_the_line(tmp_path: Path):
    write_celeba(tmp_path)
    attr = tmp_path / "list_attr_celeba.txt"
    good = attr.read_text()
    lines = good.splitlines()
    attr.write_text("\n".join(lines[:4] + [lines[4].rsplit(" ", 1)[0]] + lines[5:]) + "\n")  # a value short
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:5: expected a filename and 40 values of -1 or 1, got '000003.jpg"):
        source(tmp_path).open("train")
    attr.write_text(good.replace("000004.jpg  1", "000004.jpg  0").replace("000004.jpg -1", "000004.jpg  0"))
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:6: attribute '5_o_Clock_Shadow' is 0, expected -1 or 1"):
        source(tmp_path).open("train")
    attr.write_text("7" + good[1:])
    with pytest.raises(DataError, match=r"list_attr_celeba.txt:1: announces 7 images but has 6 rows"):
        source(tmp_path).open("train")
    attr.write_text(good)
    partition = tmp_path / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace("000004.jpg 1", "000004.jpg 3"))
    with pytest.raises(DataError, match=r"list_eval_partition.txt:4: expected 'filename split' with split 0 \(train\)"):
        source(tmp_path).open("train")
    partition.write_text("".join(f"{i:06d}.jpg 0\n" for i in range(1, 6)))
    with pytest.raises(
        DataError, match=r"list_attr_celeba.txt:8: 000006.jpg is in no split of .*list_eval_partition.txt \(1 such images\)"
    ):
        source(tmp_path).open("train")


def test_the_full_size_attribute_file_parses(tmp_path: Path):
    """All 202,599 rows (speed is a benchmark's job: a timed assertion fails on a loaded machine)."""
    count = 202599
    rng = np.random.default_rng(0)
    patterns = ["".join(f"{v:>3}" for v in rng.choice([-1, 1], 40)) for _ in range(16)]
    path = tmp_path / "list_attr_celeba.txt"
    rows = "\n".join(f"{i:06d}.jpg{patterns[i % 16]}" for i in range(1, count + 1))
    path.write_text(f"{count}\n{' '.join(OFFICIAL_NAMES)} \n{rows}\n")
    names, filenames, values = read_attribute_file(path)
    assert names == OFFICIAL_NAMES and len(filenames) == count and values.shape == (count, 40)
    assert filenames[-1] == "202599.jpg" and values[-1].tolist() == [int(v == "1") for v in patterns[count % 16].split()]


def test_check_command(tmp_path: Path):
    write_celeba(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["data", "check", "celeba", "--data-root", str(tmp_path), "--image-size", "32"])
    assert result.exit_code == 0, result.output
    for line in ("train: 3 images of 3x32x32 (the official split has 162770", "valid: 1 images", "test: 2 images"):
        assert line in result.output
    assert re.search(r"\n  attribute +train +valid +test\n  5_o_Clock_Shadow +\d\.\d{3} +\d\.\d{3} +\d\.\d{3}\n", result.output)
    path = tmp_path / "img_align_celeba" / "000006.jpg"
    path.write_bytes(b"not a jpeg")
    result = runner.invoke(main, ["data", "check", "celeba", "--data-root", str(tmp_path), "--split", "test"])
    assert result.exit_code == 2
    assert re.search(r"protodiff: error: \S+000006.jpg: cannot read image .*list_eval_partition.txt line 6\)\n$", result.output)


def test_binary_text_file_is_a_one_line_error(tmp_path: Path):
    write_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").write_bytes(b"\x89PNG\r\n\x1a\n\xff")
    with pytest.raises(DataError, match=r"list_eval_partition.txt: not a text file \(invalid start byte at byte 0\)"):
        source(tmp_path).open("train")
