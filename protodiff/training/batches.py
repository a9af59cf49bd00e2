"""Training batches in a seeded order that a resumed run continues exactly.

The order is a :class:`~torch.utils.data.DistributedSampler`'s (seeded with the run's seed and the
epoch), split into batches of the local batch size, starting part-way through an epoch when a run
resumes. Small splits are read once into one tensor (``train.preload``) and batches are sliced
from it: the same images in the same order, without decoding (or, for ``shapes``, drawing) every
image again each epoch. Dataset items are pure functions of their index (the dataset contract),
so both ways give identical batches.

Worker counts adapt to the machine: ``train.num_workers`` (the published presets ask for 8) is
capped at the CPUs this process may run on (:func:`worker_count`), so a preset written for a
many-core node runs on a laptop without torch's warnings about oversubscribed workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, Sampler
from tqdm.auto import tqdm

from protodiff.contracts.dataset import LabeledImages
from protodiff.experiment import TrainConfig

#: ``train.preload: auto`` reads a split into memory when it takes at most this many bytes.
PRELOAD_AUTO_BYTES = 1 << 30


class _FromOffset(Sampler[int]):
    """The indices of a DistributedSampler epoch, starting part-way through (for resuming)."""

    def __init__(self, sampler: DistributedSampler, start: int) -> None:
        self.sampler = sampler
        self.start = start

    def __iter__(self) -> Iterator[int]:
        return iter(list(self.sampler)[self.start :])

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.start)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one; else the count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask
        return os.cpu_count() or 1


def worker_count(requested: int) -> int:
    """DataLoader workers to start for ``requested``: never more than :func:`available_cpus`
    (what torch itself suggests as the most a loader should use); 0 stays 0 (load in-process)."""
    return max(0, min(requested, available_cpus()))


def should_preload(dataset: LabeledImages, train: TrainConfig, steps: int) -> bool:
    """``train.preload``: ``auto`` reads the split into memory when the run draws at least one
    epoch of it (otherwise reading it all would cost more than the run reads) and it fits in
    :data:`PRELOAD_AUTO_BYTES` as fp32."""
    if train.preload != "auto":
        return train.preload == "always"
    size = len(dataset) * dataset.channels * dataset.image_size**2 * 4
    return steps * train.batch_size >= len(dataset) and size <= PRELOAD_AUTO_BYTES


def read_all(dataset: LabeledImages, *, num_workers: int = 0, progress: bool = False) -> Tensor:
    """Every image of ``dataset``, in index order, as one (N, C, H, W) tensor.

    The loader is given its own generator: by default a loader draws its workers' seed from the
    global RNG, which a resumed run has just restored, and the draw would shift every dropout mask
    after a resume."""
    loader = DataLoader(dataset, batch_size=256, num_workers=worker_count(num_workers), generator=torch.Generator())
    chunks = [
        images
        for images, _ in tqdm(loader, desc="reading the train split", disable=not progress, dynamic_ncols=True, leave=False)
    ]
    return torch.cat(chunks)


class TrainingBatches:
    """The batches of a run from step ``start`` on, epoch after epoch (for one DDP rank)."""

    def __init__(
        self,
        dataset: LabeledImages,
        *,
        local_batch: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        images: Tensor | None = None,
    ) -> None:
        self.dataset = dataset
        self.local_batch = local_batch
        self.seed = seed
        self.num_workers = worker_count(num_workers)
        #: The whole split in memory (None: items are read through a DataLoader).
        self.images = images
        self.sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.sampler) // self.local_batch

    def _epoch(self, epoch: int, offset: int) -> Iterator[Tensor]:
        self.sampler.set_epoch(epoch)
        batches = BatchSampler(_FromOffset(self.sampler, offset * self.local_batch), self.local_batch, drop_last=True)
        if self.images is not None:
            for indices in batches:
                yield self.images[torch.tensor(indices)]
            return
        # A loader draws its workers' base seed from `generator` (default: the global RNG, which
        # would make the dropout masks after a resume differ from an uninterrupted run).
        loader = DataLoader(
            self.dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            generator=torch.Generator().manual_seed(self.seed + epoch),
        )
        for images, _ in loader:
            yield images

    def from_step(self, step: int) -> Iterator[Tensor]:
        epoch, offset = divmod(step, self.steps_per_epoch)
        while True:
            yield from self._epoch(epoch, offset)
            epoch, offset = epoch + 1, 0
