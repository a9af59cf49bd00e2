"""The ``dataset`` contract: a named source of labelled images read from its official on-disk format.

Every source yields ``(image, attributes)`` pairs: ``image`` a float tensor (C, H, W) in [-1, 1],
``attributes`` a float tensor of 0/1 values, one per name in ``attribute_names``. The same pair
type serves training (which ignores the attributes), metrics (which ignore the images) and the
editing and shortcut tools (which need both).

A split may also know *where* some attributes are (a dataset with regions): ``region_names()``
lists the attributes it can place, and ``regions(index)`` gives each one present in an image as a
boolean (H, W) mask at the image's size. ``shapes`` places its marks, ``folder`` reads optional
mask files; every other split has none (both return empty), and the ``localisation`` metric says so.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from protodiff._registry.component import Component
from protodiff.errors import DataError
from protodiff.validation import seed as check_seed


@dataclass
class DataSourceConfig:
    """Options every dataset source has; sources extend this with their own."""

    #: Where the official files are (unused by generated sources such as ``shapes``).
    root: str | None = None
    image_size: int = 32
    #: Keep a deterministic random subset of at most this many items per split.
    limit: int | None = None
    #: Seed of that subset.
    subset_seed: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 8:
            raise ValueError("image_size must be at least 8")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be a positive number of items")
        check_seed(subset_seed=self.subset_seed)


class LabeledImages(Dataset[tuple[Tensor, Tensor]], ABC):
    """A split of a dataset: indexable ``(image, attributes)`` pairs plus their metadata."""

    def __init__(self, attribute_names: list[str], channels: int, image_size: int) -> None:
        self.attribute_names = list(attribute_names)
        self.channels = channels
        self.image_size = image_size

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]: ...

    def attributes(self) -> Tensor:
        """All attribute rows (N, A). Sources with labels on disk override this to skip the images."""
        return torch.stack([self[i][1] for i in range(len(self))]) if len(self) else torch.zeros(0, len(self.attribute_names))

    def subset(self, indices: list[int]) -> LabeledImages:
        """The items at ``indices``. Splits with extra metadata (class labels) override this to keep it."""
        return SubsetImages(self, indices)

    def region_names(self) -> list[str]:
        """The attributes this split can place in an image (the keys :meth:`regions` may return);
        empty for a split that knows no regions. An attribute of the whole image (a colour cast)
        has no region and is not listed."""
        return []

    def regions(self, index: int) -> dict[str, Tensor]:
        """Where item ``index``'s attributes are: name -> boolean mask (image_size, image_size),
        True inside the attribute's region, for each attribute of :meth:`region_names` the image
        has (an absent attribute has no entry)."""
        return {}


class SubsetImages(LabeledImages):
    """A fixed selection of another split's items (used for ``limit``)."""

    def __init__(self, base: LabeledImages, indices: list[int]) -> None:
        super().__init__(base.attribute_names, base.channels, base.image_size)
        self.base = base
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.base[self.indices[index]]

    def attributes(self) -> Tensor:
        return self.base.attributes()[self.indices]

    def region_names(self) -> list[str]:
        return self.base.region_names()

    def regions(self, index: int) -> dict[str, Tensor]:
        return self.base.regions(self.indices[index])


def deterministic_subset(size: int, limit: int | None, seed: int) -> list[int] | None:
    """Sorted indices of a seeded random subset of ``limit`` out of ``size`` (None: keep all)."""
    if limit is None or limit >= size:
        return None
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(size, generator=generator)[:limit].tolist())


class DatasetSource(Component, ABC):
    """A dataset by name. Constructed as ``cls(config)``; ``open(split)`` gives a split."""

    Config = DataSourceConfig  # type: ignore[assignment]  # Component's Config is a placeholder; a dataset's is this
    splits: ClassVar[tuple[str, ...]] = ("train", "test")

    def __init__(self, config: DataSourceConfig) -> None:
        self.config = config

    @property
    def channels(self) -> int:
        """Image channels, known without reading any data (so a model can be built first)."""
        return 3

    def open(self, split: str) -> LabeledImages:
        """The ``split`` of this dataset, limited to ``config.limit`` items if set."""
        if split not in self.splits:
            raise DataError(f"{type(self).__name__} has no split {split!r}; choose one of {', '.join(self.splits)}")
        data = self.load(split)
        indices = deterministic_subset(len(data), self.config.limit, self.config.subset_seed)
        return data if indices is None else data.subset(indices)

    def expected_size(self, split: str) -> int | None:
        """How many items the official distribution has in ``split`` (None: unknown), so that
        ``protodiff data check`` can flag an incomplete copy."""
        return None

    @abstractmethod
    def load(self, split: str) -> LabeledImages:
        """The whole split, read from ``config.root`` (or generated)."""
