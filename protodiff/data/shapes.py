"""``shapes``: a generated dataset with ground-truth local and global attributes.

It is the embedded default that makes every command run without downloads, and the ground truth
the interpretability tools are checked against: Patronus claims its prototypes capture *local*
concepts (small marks) better than *global* ones (tone, colour cast); here both kinds exist,
independently, with known labels.

Local attributes are small marks, each in its own cell of a 3x3 grid at a random offset:
``red_square``, ``blue_disc``, ``green_triangle``, ``yellow_cross``, ``checker_patch``
(a black-and-white checkerboard: texture, not colour). With ``layout: random`` (the default) the
cells are a random permutation, so a mark may appear anywhere; with ``layout: aligned`` every mark
has a home cell (:data:`HOME_CELLS`) and only its offset inside the cell varies, the way the parts
of an aligned face (eyes, nose, mouth) sit at nearly fixed places in CelebA. Global attributes change the whole image:
``dark_bg`` (background tone), ``warm_cast`` (colour cast), ``gradient`` (top-to-bottom shading).

Each attribute is present with probability 1/2, independently, except that ``shortcut`` plants a
spurious correlation in the *train split only* (as Patronus does with CelebA hair colour and
smiling): with probability ``strength`` attribute ``b`` is set equal to (or the opposite of)
attribute ``a``. Every image is a pure function of (seed, split, index), drawn at 4x resolution
and box-filtered down so marks are anti-aliased at 16 px.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.errors import DataError
from protodiff.validation import seed as check_seed

LOCAL_ATTRIBUTES = ("red_square", "blue_disc", "green_triangle", "yellow_cross", "checker_patch")
GLOBAL_ATTRIBUTES = ("dark_bg", "warm_cast", "gradient")
ATTRIBUTES = LOCAL_ATTRIBUTES + GLOBAL_ATTRIBUTES

_COLOURS = {
    "red_square": (0.90, 0.10, 0.10),
    "blue_disc": (0.10, 0.25, 0.95),
    "green_triangle": (0.10, 0.80, 0.20),
    "yellow_cross": (0.95, 0.90, 0.10),
}
_SUPERSAMPLE = 4
_GRID = 3
#: ``layout: aligned``: the (row, column) of each mark's home cell in the 3x3 grid.
HOME_CELLS = {
    "red_square": (0, 0),
    "blue_disc": (0, 2),
    "green_triangle": (1, 1),
    "yellow_cross": (2, 1),
    "checker_patch": (2, 0),
}
Layout = Literal["random", "aligned"]
_SPLIT_IDS = {"train": 0, "test": 1}


@dataclass
class ShortcutConfig:
    """Plant ``b := a`` (or ``b := not a``) with probability ``strength`` in the train split."""

    a: str
    b: str
    strength: float = 1.0
    relation: Literal["same", "opposite"] = "same"

    def __post_init__(self) -> None:
        for key in (self.a, self.b):
            if key not in ATTRIBUTES:
                raise ValueError(f"shortcut attribute {key!r} is not one of {', '.join(ATTRIBUTES)}")
        if self.a == self.b:
            raise ValueError("shortcut needs two different attributes")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError("shortcut strength must be in [0, 1]")


def _mark_mask(kind: str, size: int) -> np.ndarray:
    """A boolean (size, size) mask of one mark drawn at supersampled resolution."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    c = size / 2
    if kind == "red_square":
        return (np.abs(yy - c) < size * 0.42) & (np.abs(xx - c) < size * 0.42)
    if kind == "blue_disc":
        return (yy - c) ** 2 + (xx - c) ** 2 < (size * 0.46) ** 2
    if kind == "green_triangle":  # apex up
        rel = (yy - size * 0.08) / (size * 0.84)
        return (rel >= 0) & (rel <= 1) & (np.abs(xx - c) <= rel * size * 0.46)
    if kind == "yellow_cross":
        arm = size * 0.16
        return ((np.abs(yy - c) < arm) | (np.abs(xx - c) < arm)) & (np.abs(yy - c) < size * 0.46) & (np.abs(xx - c) < size * 0.46)
    raise ValueError(kind)


def sample_attributes(rng: np.random.Generator, shortcut: ShortcutConfig | None) -> np.ndarray:
    attrs = rng.random(len(ATTRIBUTES)) < 0.5
    if shortcut is not None and rng.random() < shortcut.strength:
        a, b = ATTRIBUTES.index(shortcut.a), ATTRIBUTES.index(shortcut.b)
        attrs[b] = attrs[a] if shortcut.relation == "same" else not attrs[a]
    return attrs.astype(np.float32)


@dataclass(frozen=True)
class MarkBox:
    """Where one mark was drawn, in output pixels: rows ``[top, bottom)``, columns ``[left, right)``
    (the anti-aliased edge pixels the mark touches included)."""

    name: str
    top: int
    left: int
    bottom: int
    right: int


def _plan(
    present: set[str], image_size: int, rng: np.random.Generator, layout: Layout
) -> tuple[np.ndarray, list[tuple[str, int, int, int]]]:
    """The per-image tint and each present mark's (name, top, left, size) at supersampled
    resolution: every random draw of an image, in the order :func:`render` has always made them."""
    tint = rng.normal(0.0, 0.03, size=(1, 1, 3)).astype(np.float32)
    cell = image_size * _SUPERSAMPLE // _GRID
    mark = int(cell * 0.8)
    cells = rng.permutation(_GRID * _GRID)  # drawn in both layouts, so each draws the same offsets
    placements = []
    for slot, name in enumerate(n for n in LOCAL_ATTRIBUTES if n in present):
        row, col = divmod(int(cells[slot]), _GRID) if layout == "random" else HOME_CELLS[name]
        top = row * cell + int(rng.integers(0, cell - mark + 1))
        left = col * cell + int(rng.integers(0, cell - mark + 1))
        placements.append((name, top, left, mark))
    return tint, placements


def _present(attrs: np.ndarray) -> set[str]:
    return {name for name, on in zip(ATTRIBUTES, attrs) if on}


def render(attrs: np.ndarray, image_size: int, rng: np.random.Generator, layout: Layout = "random") -> np.ndarray:
    """An (H, W, 3) float image in [0, 1] showing exactly the attributes set in ``attrs``."""
    present = _present(attrs)
    big = image_size * _SUPERSAMPLE
    tone = 0.22 if "dark_bg" in present else 0.78
    tint, placements = _plan(present, image_size, rng, layout)
    canvas = np.empty((big, big, 3), dtype=np.float32)
    canvas[:] = tone + tint  # slight per-image tint
    for name, top, left, mark in placements:
        region = canvas[top : top + mark, left : left + mark]
        if name == "checker_patch":
            yy, xx = np.mgrid[0:mark, 0:mark]
            square = max(mark // 4, _SUPERSAMPLE)
            region[:] = (((yy // square) + (xx // square)) % 2).astype(np.float32)[..., None] * 0.9 + 0.05
        else:
            region[_mark_mask(name, mark)] = _COLOURS[name]

    if "gradient" in present:
        canvas *= np.linspace(1.25, 0.55, big, dtype=np.float32)[:, None, None]
    if "warm_cast" in present:
        canvas *= np.array([1.25, 1.0, 0.7], dtype=np.float32)
    small = canvas.reshape(image_size, _SUPERSAMPLE, image_size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    return np.clip(small, 0.0, 1.0)


def mark_boxes(attrs: np.ndarray, image_size: int, rng: np.random.Generator, layout: Layout = "random") -> list[MarkBox]:
    """The box of every mark :func:`render` draws for the same arguments (the same ``rng`` state)."""
    _, placements = _plan(_present(attrs), image_size, rng, layout)
    return [
        MarkBox(
            name, top // _SUPERSAMPLE, left // _SUPERSAMPLE, -(-(top + size) // _SUPERSAMPLE), -(-(left + size) // _SUPERSAMPLE)
        )
        for name, top, left, size in placements
    ]


class ShapesImages(LabeledImages):
    def __init__(self, config: Shapes.Config, split: str) -> None:
        super().__init__(list(ATTRIBUTES), 3, config.image_size)
        self.config = config
        self.split_id = _SPLIT_IDS[split]
        self.size = config.num_train if split == "train" else config.num_test
        self.shortcut = config.shortcut if split == "train" else None

    def __len__(self) -> int:
        return self.size

    def _rngs(self, index: int) -> tuple[np.random.Generator, np.random.Generator]:
        if not 0 <= index < self.size:
            raise IndexError(f"shapes index {index} out of range 0..{self.size - 1}")
        key = [self.config.seed, self.split_id, index]
        return np.random.default_rng(key + [0]), np.random.default_rng(key + [1])

    def _attributes(self, index: int) -> np.ndarray:
        return sample_attributes(self._rngs(index)[0], self.shortcut)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.counterfactual(index, {})

    def counterfactual(self, index: int, changes: Mapping[str, bool]) -> tuple[Tensor, Tensor]:
        """Item ``index`` drawn again with the global attributes in ``changes`` set as given, and
        everything else (its marks, their places, its tint) as drawn: the image an edit of those
        attributes should produce, to score edits against. Only global attributes can be changed:
        adding or removing a mark moves the marks drawn after it."""
        unknown = set(changes) - set(GLOBAL_ATTRIBUTES)
        if unknown:
            raise DataError(
                f"cannot change {', '.join(sorted(unknown))} in a counterfactual: only the global attributes "
                f"({', '.join(GLOBAL_ATTRIBUTES)}) can be changed with everything else kept"
            )
        attr_rng, draw_rng = self._rngs(index)
        attrs = sample_attributes(attr_rng, self.shortcut)
        for name, present in changes.items():
            attrs[ATTRIBUTES.index(name)] = float(present)
        image = render(attrs, self.image_size, draw_rng, self.config.layout)
        return torch.from_numpy(image).permute(2, 0, 1).mul(2).sub(1).contiguous(), torch.from_numpy(attrs)

    def attributes(self) -> Tensor:
        return torch.from_numpy(np.stack([self._attributes(i) for i in range(self.size)]))

    def mark_boxes(self, index: int) -> list[MarkBox]:
        """Where item ``index``'s marks are (the ground truth for saliency and prototype locations)."""
        attr_rng, draw_rng = self._rngs(index)
        return mark_boxes(sample_attributes(attr_rng, self.shortcut), self.image_size, draw_rng, self.config.layout)

    def region_names(self) -> list[str]:
        """The five marks; the global attributes (``dark_bg``, ``warm_cast``, ``gradient``) change
        every pixel and have no region."""
        return list(LOCAL_ATTRIBUTES)

    def regions(self, index: int) -> dict[str, Tensor]:
        """Each present mark's box (:meth:`mark_boxes`, anti-aliased edge pixels included) as a mask."""
        out = {}
        for box in self.mark_boxes(index):
            mask = torch.zeros(self.image_size, self.image_size, dtype=torch.bool)
            mask[box.top : box.bottom, box.left : box.right] = True
            out[box.name] = mask
        return out


class Shapes(DatasetSource):
    """Generated images with known local and global binary attributes (no files needed)."""

    @dataclass
    class Config(DataSourceConfig):
        num_train: int = 4000
        num_test: int = 1000
        seed: int = 0
        #: ``random``: marks in random cells; ``aligned``: each mark in its home cell (HOME_CELLS).
        layout: Layout = "random"
        shortcut: ShortcutConfig | None = None

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.image_size < 16:
                raise ValueError("shapes needs image_size >= 16 for its marks to be legible")
            if self.num_train < 1 or self.num_test < 1:
                raise ValueError("num_train and num_test must be positive")
            check_seed(seed=self.seed)

    def load(self, split: str) -> LabeledImages:
        return ShapesImages(self.config, split)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.dataset.add("shapes", Shapes)
