"""Worker counts adapt to the machine: a preset's ``num_workers: 8`` on a 2-core machine starts
as many workers as there are CPUs, without torch's oversubscription warnings."""

from __future__ import annotations

import warnings

from protodiff.data.shapes import Shapes
from protodiff.training.batches import TrainingBatches, available_cpus, worker_count


def test_worker_counts_are_capped_at_the_cpus_available():
    assert worker_count(0) == 0
    assert worker_count(10_000) == available_cpus()
    assert worker_count(1) == min(1, available_cpus())


def test_a_loader_asked_for_more_workers_than_cpus_starts_without_warnings():
    data = Shapes(Shapes.Config(image_size=16, num_train=16, num_test=8)).open("train")
    batches = TrainingBatches(data, local_batch=4, seed=0, num_workers=64)
    assert batches.num_workers == available_cpus()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert next(iter(batches.from_step(0))).shape == (4, 3, 16, 16)
