"""How many images to generate at once: what the device's free memory holds.

Sampling keeps no autograd state, so its memory is the denoiser's peak for one call plus the few
image-sized tensors a walk holds (x_t, eps_hat, x0_hat, x_next, a multistep solver's history).
On CUDA the denoiser's peak per image is measured on a small probe batch, and the batch is what
fits in a fraction of the free memory; on the CPU, where memory is rarely the limit and a larger
batch runs no faster per image, it is a fixed size.

A deterministic sampler gives the same images at any batch size; a stochastic one (``ddpm``,
``ddim`` with eta > 0) draws its noise batch by batch, so its images depend on the batch size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from protodiff.model import ConditionedDiffusion

CPU_BATCH = 64
MAX_BATCH = 1024
#: The share of the free memory a batch may take (the rest: the allocator's fragmentation, other work).
HEADROOM = 0.8
#: Image-sized tensors a walk keeps beside the denoiser's own peak.
WALK_TENSORS = 8
PROBE = 8


def batch_for_memory(free_bytes: int, per_image_bytes: float, cap: int = MAX_BATCH) -> int:
    """The largest batch (at least 1, at most ``cap``) whose images take ``HEADROOM`` of ``free_bytes``."""
    return max(1, min(cap, int(HEADROOM * free_bytes // per_image_bytes)))


@torch.inference_mode()
def sampling_batch_size(model: ConditionedDiffusion, cap: int = MAX_BATCH) -> int:
    """How many images ``model`` can sample at once on its device (``CPU_BATCH`` on the CPU)."""
    device = model.device
    if device.type != "cuda":
        return min(cap, CPU_BATCH)
    x = torch.zeros(PROBE, model.in_channels, model.image_size, model.image_size, device=device)
    t = torch.zeros(PROBE, dtype=torch.long, device=device)
    vector = torch.zeros(PROBE, model.conditioner.dim, device=device) if model.is_conditional else None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    model.net_fn(vector, PROBE)(x, t)
    peak = torch.cuda.max_memory_allocated(device) - start
    free, _ = torch.cuda.mem_get_info(device)
    return batch_for_memory(free, peak / PROBE + WALK_TENSORS * x[0].numel() * x.element_size(), cap)
