from __future__ import annotations

import pytest
import torch

from protodiff.diffusion.batching import CPU_BATCH, batch_for_memory, sampling_batch_size
from protodiff.model import ConditionedDiffusion


def test_the_batch_fills_the_headroom_of_free_memory_within_bounds():
    assert batch_for_memory(free_bytes=10_000, per_image_bytes=100) == 80  # 80% of the free memory
    assert batch_for_memory(free_bytes=10_000, per_image_bytes=100, cap=16) == 16
    assert batch_for_memory(free_bytes=10, per_image_bytes=100) == 1  # never zero: let the device say no


def test_on_the_cpu_the_batch_is_fixed(tiny_config):
    model = ConditionedDiffusion.from_experiment(tiny_config())
    assert sampling_batch_size(model) == CPU_BATCH and sampling_batch_size(model, cap=5) == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="measures CUDA memory")
def test_on_cuda_the_chosen_batch_samples(tiny_config):
    model = ConditionedDiffusion.from_experiment(tiny_config()).cuda()
    batch = sampling_batch_size(model, cap=256)
    assert 1 <= batch <= 256
    assert model.sample(batch, sampler=model.sampler("dpm-solver++", steps=2)).shape[0] == batch
