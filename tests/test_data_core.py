"""The core's two sources: generated ``shapes`` (checked against its own ground truth) and ``folder``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from protodiff.config import parse
from protodiff.data.folder import Folder
from protodiff.data.shapes import ATTRIBUTES, GLOBAL_ATTRIBUTES, LOCAL_ATTRIBUTES, Shapes
from protodiff.errors import ConfigError, DataError


def shapes(**options):
    return Shapes(parse(Shapes.Config, {"num_train": 200, "num_test": 100, **options}))


def test_shapes_items_are_deterministic_and_in_range():
    a, b = shapes().open("train"), shapes().open("train")
    for i in (0, 7, 199):
        assert torch.equal(a[i][0], b[i][0]) and torch.equal(a[i][1], b[i][1])
    image, attrs = a[0]
    assert image.shape == (3, 32, 32) and image.min() >= -1 and image.max() <= 1
    assert attrs.shape == (len(ATTRIBUTES),) and set(attrs.tolist()) <= {0.0, 1.0}
    assert not torch.equal(a[0][0], shapes(seed=1).open("train")[0][0])
    assert not torch.equal(a[0][0], shapes().open("test")[0][0])


def test_attributes_fast_path_agrees_with_items():
    data = shapes().open("test")
    assert torch.equal(data.attributes(), torch.stack([data[i][1] for i in range(len(data))]))


@pytest.mark.parametrize("size", [16, 32, 64])
def test_red_pixels_appear_exactly_when_the_red_square_is_present(size):
    data = shapes(image_size=size).open("train")
    red = ATTRIBUTES.index("red_square")
    for i in range(60):
        image, attrs = data[i]
        rgb = image * 0.5 + 0.5
        is_red = ((rgb[0] > 0.4) & (rgb[0] > 2.5 * rgb[1]) & (rgb[0] > 2.5 * rgb[2])).any().item()  # saturated red
        assert is_red == bool(attrs[red]), i


@pytest.mark.parametrize("size", [16, 32, 64])
def test_aligned_marks_stay_in_their_home_cells(size):
    """Saturated red pixels appear exactly when red_square is set, and only inside its home cell."""
    from protodiff.data.shapes import HOME_CELLS

    data = shapes(image_size=size, layout="aligned").open("train")
    red = ATTRIBUTES.index("red_square")
    row, col = HOME_CELLS["red_square"]
    cell = size / 3
    for i in range(60):
        image, attrs = data[i]
        rgb = image * 0.5 + 0.5
        ys, xs = ((rgb[0] > 0.4) & (rgb[0] > 2.5 * rgb[1]) & (rgb[0] > 2.5 * rgb[2])).nonzero(as_tuple=True)
        assert (len(ys) > 0) == bool(attrs[red]), i
        if len(ys):  # anti-aliased edges may bleed one pixel
            assert row * cell - 1 <= ys.min() and ys.max() < (row + 1) * cell + 1, i
            assert col * cell - 1 <= xs.min() and xs.max() < (col + 1) * cell + 1, i


@pytest.mark.parametrize("layout", ["random", "aligned"])
def test_mark_boxes_hold_each_mark_and_nothing_else_does(layout):
    """Every saturated-colour pixel lies in the box of the mark of that colour, and every box
    holds some of its mark: the ground truth saliency and prototype locations are scored against."""
    data = shapes(layout=layout).open("test")
    for i in range(40):
        image, attrs = data[i]
        boxes = data.mark_boxes(i)
        assert [b.name for b in boxes] == [n for n, on in zip(ATTRIBUTES, attrs) if on and n in LOCAL_ATTRIBUTES]
        rgb = image * 0.5 + 0.5
        red = (rgb[0] > 0.4) & (rgb[0] > 2.5 * rgb[1]) & (rgb[0] > 2.5 * rgb[2])
        blue = (rgb[2] > 0.4) & (rgb[2] > 2.0 * rgb[0])
        for name, mask in (("red_square", red), ("blue_disc", blue)):
            inside = torch.zeros_like(mask)
            for b in boxes:
                if b.name == name:
                    assert 0 <= b.top < b.bottom <= 32 and 0 <= b.left < b.right <= 32
                    inside[b.top : b.bottom, b.left : b.right] = True
                    assert mask[b.top : b.bottom, b.left : b.right].any(), (i, name)
            assert not (mask & ~inside).any(), (i, name)


def test_the_layouts_share_attributes_and_differ_only_in_placement():
    random, aligned = shapes().open("train"), shapes(layout="aligned").open("train")
    assert torch.equal(random.attributes(), aligned.attributes())
    image_r, attrs = random[1]
    image_a, _ = aligned[1]
    assert attrs[:5].sum() > 0 and not torch.equal(image_r, image_a)


def test_dark_background_is_a_global_tone():
    data = shapes().open("train")
    dark = ATTRIBUTES.index("dark_bg")
    brightness = {0: [], 1: []}
    for i in range(100):
        image, attrs = data[i]
        brightness[int(attrs[dark])].append(image.mean().item())
    assert max(brightness[1]) < min(brightness[0])


def test_a_counterfactual_changes_its_global_attributes_and_keeps_the_marks():
    data = shapes().open("test")
    dark = ATTRIBUTES.index("dark_bg")
    assert all(torch.equal(data.counterfactual(i, {})[0], data[i][0]) for i in range(5))
    checked = 0
    for i in range(40):
        image, attrs = data[i]
        if attrs[dark] or attrs[ATTRIBUTES.index("gradient")] or attrs[ATTRIBUTES.index("warm_cast")]:
            continue
        darkened, changed = data.counterfactual(i, {"dark_bg": True})
        assert changed[dark] == 1 and torch.equal(
            torch.cat([changed[:dark], changed[dark + 1 :]]), torch.cat([attrs[:dark], attrs[dark + 1 :]])
        )
        marks = torch.zeros(32, 32, dtype=torch.bool)
        for box in data.mark_boxes(i):
            marks[box.top : box.bottom, box.left : box.right] = True
        assert (darkened[:, ~marks] < image[:, ~marks] - 1.0).all()  # the background: 0.78 -> 0.22
        kept = (darkened == image).all(dim=0)
        assert not (kept & ~marks).any() and kept.any() == marks.any()  # only the marks' own pixels are kept
        assert torch.equal(data.counterfactual(i, {"dark_bg": False})[0], image)
        checked += 1
    assert checked > 3
    with pytest.raises(DataError, match="cannot change red_square in a counterfactual: only the global"):
        data.counterfactual(0, {"red_square": True})


def test_attributes_are_balanced_and_independent_without_a_shortcut():
    labels = shapes(num_train=2000).open("train").attributes().numpy()
    assert np.allclose(labels.mean(0), 0.5, atol=0.05)
    corr = np.corrcoef(labels.T)
    assert np.abs(corr[~np.eye(len(ATTRIBUTES), dtype=bool)]).max() < 0.1
    assert set(LOCAL_ATTRIBUTES) | set(GLOBAL_ATTRIBUTES) == set(ATTRIBUTES)


def test_a_planted_shortcut_holds_in_train_only():
    source = shapes(num_train=1000, num_test=1000, shortcut={"a": "red_square", "b": "dark_bg", "relation": "opposite"})
    a, b = ATTRIBUTES.index("red_square"), ATTRIBUTES.index("dark_bg")
    train, test = source.open("train").attributes(), source.open("test").attributes()
    assert torch.all(train[:, a] != train[:, b])
    agreement = (test[:, a] == test[:, b]).float().mean().item()
    assert 0.4 < agreement < 0.6


def test_shapes_config_errors():
    with pytest.raises(ConfigError, match="shortcut attribute 'purple' is not one of"):
        parse(Shapes.Config, {"shortcut": {"a": "purple", "b": "dark_bg"}})
    with pytest.raises(ConfigError, match="image_size >= 16"):
        parse(Shapes.Config, {"image_size": 8})


def test_limit_keeps_a_deterministic_subset():
    full = shapes().open("train")
    limited = shapes(limit=10, subset_seed=4).open("train")
    again = shapes(limit=10, subset_seed=4).open("train")
    assert len(limited) == 10 and limited.indices == again.indices
    assert torch.equal(limited[3][0], full[limited.indices[3]][0])
    assert torch.equal(limited.attributes(), full.attributes()[limited.indices])


def make_folder(root, names, size=(20, 12)):
    root.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((size[1], size[0], 3), (i * 20) % 256, dtype=np.uint8)).save(root / name)


def folder(root, **options):
    return Folder(parse(Folder.Config, {"root": str(root), "image_size": 16, **options}))


def test_folder_with_split_subfolders_and_attributes(tmp_path):
    make_folder(tmp_path / "train", ["a.png", "b.jpg"])
    make_folder(tmp_path / "test", ["c.png"])
    (tmp_path / "train" / "attributes.csv").write_text("filename,smiling,hat\na.png,1,0\nb.jpg,0,1\n")
    train = folder(tmp_path).open("train")
    assert len(train) == 2 and train.attribute_names == ["smiling", "hat"]
    image, attrs = train[0]
    assert image.shape == (3, 16, 16) and attrs.tolist() == [1.0, 0.0]
    test = folder(tmp_path).open("test")
    assert len(test) == 1 and test.attribute_names == [] and test[0][1].shape == (0,)
    assert folder(tmp_path, channels=1).open("test")[0][0].shape == (1, 16, 16)


def test_folder_without_subfolders_holds_out_a_stable_fraction(tmp_path):
    make_folder(tmp_path, [f"{i:03d}.png" for i in range(60)])
    train, test = folder(tmp_path, test_fraction=0.25).open("train"), folder(tmp_path, test_fraction=0.25).open("test")
    assert len(train) + len(test) == 60 and 5 <= len(test) <= 25
    assert not {p.name for p in train.paths} & {p.name for p in test.paths}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "no such directory"),
        (lambda root: root.mkdir(), "no images"),
        (
            lambda root: (make_folder(root, ["a.png"]), (root / "attributes.csv").write_text("name,x\n")),
            r"attributes.csv:1: expected a header",
        ),
        (
            lambda root: (make_folder(root, ["a.png"]), (root / "attributes.csv").write_text("filename,x,y\na.png,1\n")),
            r"attributes.csv:2: expected 3 columns",
        ),
        (
            lambda root: (make_folder(root, ["a.png"]), (root / "attributes.csv").write_text("filename,x\na.png,2\n")),
            r"attributes.csv:2: attribute 'x' must be 0 or 1",
        ),
        (
            lambda root: (make_folder(root, ["a.png", "b.png"]), (root / "attributes.csv").write_text("filename,x\na.png,1\n")),
            r"no row for image 'b.png'",
        ),
        (
            lambda root: (make_folder(root, ["a.png"]), (root / "attributes.csv").write_text("filename,x\na.png,1\nz.png,0\n")),
            r"row for 'z.png', which is not an image",
        ),
    ],
)
def test_folder_errors_name_the_file(tmp_path, setup, message):
    root = tmp_path / "imgs"
    setup(root)
    with pytest.raises(DataError, match=message):
        folder(root, test_fraction=0.0).open("train")


def test_a_corrupt_image_is_named(tmp_path):
    make_folder(tmp_path, ["good.png"])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    data = folder(tmp_path, test_fraction=0.0).open("train")
    with pytest.raises(DataError, match=r"bad.png: cannot read image"):
        data[0]
