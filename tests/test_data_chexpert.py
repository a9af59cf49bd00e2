"""chexpert: CheXpert-v1.0-small/ with the official CSV header, its four label values and JPEGs
nested by patient and study."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from protodiff.cli import main
from protodiff.data.chexpert import OBSERVATIONS, CheXpert
from protodiff.errors import DataError

HEADER = "Path,Sex,Age,Frontal/Lateral,AP/PA," + ",".join(OBSERVATIONS)
# (split folder, patient, view, labels for the 14 observations: 1.0, 0.0, -1.0 or blank)
TRAIN = [
    ("train", 1, "Frontal", ["1.0"] + [""] * 13),
    ("train", 1, "Lateral", ["1.0"] + [""] * 13),
    ("train", 2, "Frontal", ["", "-1.0", "1.0", "0.0"] + [""] * 9 + ["1.0"]),
    ("train", 3, "Frontal", ["0.0", "", "-1.0"] + [""] * 11),
]
VALID = [("valid", 64541, "Frontal", ["0.0", "0.0", "1.0"] + ["0.0"] * 11), ("valid", 64542, "Lateral", ["1.0"] + ["0.0"] * 13)]


def write_rows(release: Path, csv_name: str, rows) -> None:
    lines = [HEADER]
    for folder, patient, view, labels in rows:
        relative = f"{folder}/patient{patient:05d}/study1/view{1 if view == 'Frontal' else 2}_{view.lower()}.jpg"
        lines.append(f"CheXpert-v1.0-small/{relative},Female,68,{view},{'AP' if view == 'Frontal' else ''}," + ",".join(labels))
        image = release / relative
        image.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.random.default_rng(patient).integers(0, 256, (40, 32), dtype=np.uint8)).save(image)
    (release / csv_name).write_text("\n".join(lines) + "\n")


def write_chexpert(root: Path, folder: str = "CheXpert-v1.0-small") -> Path:
    release = root / folder
    release.mkdir(parents=True)
    write_rows(release, "train.csv", TRAIN)
    write_rows(release, "valid.csv", VALID)
    return release


def source(root: Path, **options) -> CheXpert:
    return CheXpert(CheXpert.Config(root=str(root), **{"image_size": 32, **options}))


def test_labels_under_each_uncertainty_policy(tmp_path: Path):
    write_chexpert(tmp_path)
    zeros = source(tmp_path).open("train")
    assert len(zeros) == 3 and zeros.attribute_names == list(OBSERVATIONS)  # the lateral view is left out
    expected = torch.zeros(3, 14)
    expected[0, 0] = expected[1, 2] = expected[1, 13] = 1  # 1.0 -> 1; 0.0, blank and (U-Zeros) -1.0 -> 0
    assert torch.equal(zeros.attributes(), expected)
    ones = source(tmp_path, uncertain="ones").open("train").attributes()
    expected[1, 1] = expected[2, 2] = 1  # U-Ones: the two -1.0 cells become 1
    assert torch.equal(ones, expected)
    assert len(source(tmp_path, frontal_only=False).open("train")) == 4


def test_images_and_the_test_split_is_valid_csv(tmp_path: Path):
    write_chexpert(tmp_path)
    test = source(tmp_path).open("test")
    assert len(test) == 1 and test.paths[0].parts[-3:] == ("patient64541", "study1", "view1_frontal.jpg")
    image, attributes = test[0]
    assert image.shape == (1, 32, 32) and image.min() >= -1 and image.max() <= 1
    assert attributes[2] == 1 and CheXpert(CheXpert.Config()).channels == 1
    assert CheXpert.Config().image_size == 224


@pytest.mark.parametrize("folder", ["CheXpert-v1.0-small", "CheXpert-v1.0", "renamed"])
def test_root_may_be_the_release_or_its_parent(tmp_path: Path, folder: str):
    release = write_chexpert(tmp_path, folder)
    assert len(source(release).open("train")) == 3
    if folder != "renamed":
        assert len(source(tmp_path).open("train")) == 3


def test_missing_root_csv_and_image(tmp_path: Path):
    with pytest.raises(
        DataError,
        match=r"CheXpert-v1.0-small/train.csv: missing; chexpert expects .*stanfordmlgroup.github.io/competitions/chexpert",
    ):
        source(tmp_path).open("train")
    release = write_chexpert(tmp_path)
    (release / "valid.csv").unlink()
    with pytest.raises(DataError, match=r"valid.csv: missing"):
        source(tmp_path).open("test")
    (release / "train" / "patient00002" / "study1" / "view1_frontal.jpg").unlink()
    data = source(tmp_path).open("train")
    with pytest.raises(DataError, match=r"view1_frontal.jpg: image file is missing \(listed in \S+train.csv line 4\)"):
        data[1]


def test_malformed_csv_names_the_line(tmp_path: Path):
    release = write_chexpert(tmp_path)
    csv_path = release / "train.csv"
    good = csv_path.read_text()
    csv_path.write_text(good.replace(",Edema,", ",Oedema,"))
    with pytest.raises(DataError, match=r"train.csv:1: missing column\(s\) 'Edema'; expected the official header Path,Sex,Age"):
        source(tmp_path).open("train")
    lines = good.splitlines()
    csv_path.write_text("\n".join(lines[:3] + [lines[3].rsplit(",", 1)[0]] + lines[4:]) + "\n")
    with pytest.raises(DataError, match=r"train.csv:4: 18 fields, the header has 19"):
        source(tmp_path).open("train")
    csv_path.write_text("\n".join(lines[:4] + [lines[4].replace("-1.0", "uncertain")]) + "\n")
    with pytest.raises(DataError, match=r"train.csv:5: 'Cardiomegaly' is 'uncertain', expected 1.0, 0.0, -1.0 or blank"):
        source(tmp_path).open("train")
    csv_path.write_text("\n".join(lines[:2] + [lines[2].replace("Lateral", "Oblique")]) + "\n")
    with pytest.raises(DataError, match=r"train.csv:3: Frontal/Lateral is 'Oblique', expected Frontal or Lateral"):
        source(tmp_path).open("train")


def test_corrupt_image_names_file_and_line(tmp_path: Path):
    release = write_chexpert(tmp_path)
    (release / "valid" / "patient64541" / "study1" / "view1_frontal.jpg").write_bytes(b"\xff\xd8\xff truncated")
    result = CliRunner().invoke(main, ["data", "check", "chexpert", "--data-root", str(tmp_path), "--image-size", "32"])
    assert result.exit_code == 2
    assert re.search(
        r"protodiff: error: \S+view1_frontal.jpg: cannot read image .*\(listed in \S+valid.csv line 2\)\n$", result.output
    )


def test_check_command_with_a_source_option(tmp_path: Path):
    write_chexpert(tmp_path)
    args = ["data", "check", "chexpert", "--data-root", str(tmp_path), "--image-size", "32", "--set", "uncertain=ones"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "train: 3 images of 1x32x32\n" in result.output and "test: 1 images of 1x32x32\n" in result.output
    assert re.search(r"\n  Enlarged Cardiomediastinum +0\.333 +0\.000\n", result.output)
    result = CliRunner().invoke(main, args[:-1] + ["uncertain=maybe"])
    assert result.exit_code == 2 and "data.uncertain: expected one of 'zeros', 'ones'" in result.output


def test_binary_csv_is_a_one_line_error(tmp_path: Path):
    release = write_chexpert(tmp_path)
    (release / "valid.csv").write_bytes(b"\xff\xfe\x00P\x00a\x00t\x00h")
    with pytest.raises(DataError, match=r"valid.csv: not a readable CSV file \('utf-8' codec can't decode"):
        source(tmp_path).open("test")
