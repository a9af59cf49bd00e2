"""Figures a person can read: small images upscaled (nearest, whole pixels), every column labelled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protodiff.figures import CELL_GAP, GROUP_GAP, MARGIN, MIN_CELL, image_grid, summary_figure

LABEL_H = 18


def _images(n: int, size: int) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.mark.parametrize(("size", "scale"), [(16, 6), (32, 3), (64, 2), (128, 1)])
def test_small_images_are_shown_at_least_96_px_wide_in_whole_pixels(size, scale):
    grid = np.asarray(image_grid([("", _images(1, size))]))
    assert grid.shape[:2] == (2 * MARGIN + size * scale, 2 * MARGIN + size * scale) and size * scale >= MIN_CELL
    block = grid[MARGIN : MARGIN + scale, MARGIN : MARGIN + scale]
    assert (block == block[0, 0]).all()  # one source pixel, nearest-neighbour


def test_paired_columns_sit_side_by_side_under_their_labels():
    real, regenerated = _images(4, 32), -_images(4, 32)
    grid = image_grid([("real", real), ("from condition", regenerated)], per_row=2)
    pair = 2 * 96 + CELL_GAP
    assert grid.size == (2 * MARGIN + 2 * pair + GROUP_GAP, 2 * MARGIN + 2 * (LABEL_H + 96) + GROUP_GAP)
    pixels = np.asarray(grid)
    for column in (0, 1):
        x = MARGIN + column * (96 + CELL_GAP)
        label_row = pixels[MARGIN : MARGIN + LABEL_H, x : x + 96]
        assert (label_row < 200).any(), "a label is drawn above every column"
    first_regenerated = pixels[MARGIN + LABEL_H, MARGIN + 96 + CELL_GAP]
    expected = ((regenerated[0, :, 0, 0].clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    assert (first_regenerated == expected).all()


def test_titles_widen_the_figure_instead_of_being_cut():
    narrow = image_grid([("", _images(1, 32))])
    titled = image_grid([("", _images(1, 32))], title="a title much longer than one 96 pixel image")
    assert titled.width > narrow.width and titled.height == narrow.height + 24


def test_summary_places_panels_under_their_captions():
    panels = [("first", image_grid([("", _images(1, 32))])), ("second", image_grid([("", _images(4, 16))]))]
    page = summary_figure("run: a title", panels)
    assert page.width >= sum(p.width for _, p in panels) and page.height > max(p.height for _, p in panels)


def test_mismatched_columns_are_refused():
    with pytest.raises(ValueError, match="same length"):
        image_grid([("real", _images(2, 16)), ("from condition", _images(3, 16))])


def test_long_column_labels_wrap_inside_their_own_cell():
    columns = [
        ("real", _images(2, 32)),
        ("from condition, noise 0", _images(2, 32)),
        ("from condition, noise 1", _images(2, 32)),
        ("inverted", _images(2, 32)),
    ]
    grid = image_grid(columns, per_row=2)
    pixels = np.asarray(grid).min(axis=2)
    label_h = next(y for y in range(MARGIN, grid.height) if (pixels[y, MARGIN : MARGIN + 96] != 255).all()) - MARGIN
    assert label_h > LABEL_H, "the long labels take a second line"
    for column in range(1, 4):  # the gap before every cell of the first group stays blank above the images
        gap = MARGIN + column * 96 + (column - 1) * CELL_GAP
        assert (pixels[MARGIN : MARGIN + label_h, gap : gap + CELL_GAP] == 255).all()
