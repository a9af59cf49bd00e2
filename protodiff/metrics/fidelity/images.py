"""The two image sets a distance compares: generated ones and real ones, as uint8 RGB.

A conditional model only generates from a condition, so ``conditions`` says where they come from:

``data``
    the conditions of real images of the evaluated split, image ``i mod len(split)`` for sample
    ``i``: a *reconstruction* FID (x_T is fresh noise, so only what the condition carries is
    kept), the setting of Patronus' Table 1 (14.6 on CelebA);
``prior``
    vectors sampled from the model's latent prior (``model.prior``, a
    :class:`~protodiff.contracts.latent_prior.LatentPrior`): an unconditional-generation FID
    ("FID with learned s", 4.8 in Patronus' Table 1). A model without a prior is refused.

An unconditional model ignores ``conditions``. Noise is drawn from one CPU generator seeded by the
evaluation's seed, so the same seed gives the same images on any device.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from protodiff.config import ComponentSpec
from protodiff.errors import ProtodiffError

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.model import ConditionedDiffusion

Conditions = Literal["data", "prior"]
#: What ConditionedDiffusion.sampler() builds when no sampler is named.
DEFAULT_SAMPLER = ComponentSpec("sampler", "ddim")


def to_uint8_rgb(images: Tensor) -> Tensor:
    """Images in [-1, 1] as uint8 (B, 3, H, W); grey images are replicated to three channels,
    as pytorch_fid and torch-fidelity's own image loaders do."""
    out = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu()
    return out.expand(-1, 3, -1, -1).contiguous() if out.shape[1] == 1 else out


class TensorImages(Dataset[Tensor]):
    """torch-fidelity's input: a Dataset whose items are single tensors."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def real_images(data: LabeledImages, num: int | None, *, batch_size: int = 256, progress: bool = False) -> Tensor:
    """The first ``num`` images of ``data`` (all if None) as uint8 RGB."""
    count = len(data) if num is None else min(num, len(data))
    chunks = []
    for start in tqdm(range(0, count, batch_size), desc="real images", disable=not progress, leave=False):
        chunks.append(to_uint8_rgb(torch.stack([data[i][0] for i in range(start, min(start + batch_size, count))])))
    return torch.cat(chunks)


def require_conditions(model: ConditionedDiffusion, conditions: Conditions) -> None:
    """Refuse ``prior`` conditions for a conditional model that has no latent prior."""
    if model.is_conditional and conditions == "prior" and model.prior is None:
        raise ProtodiffError(
            "conditions 'prior' need a latent prior, and this checkpoint has none: fit one with "
            "`protodiff fit-prior`, or use conditions 'data' (the conditions of real images: reconstruction FID)"
        )


@torch.no_grad()
def generate_images(
    model: ConditionedDiffusion,
    num: int,
    *,
    data: LabeledImages,
    conditions: Conditions = "data",
    sampler: ComponentSpec | None = None,
    seed: int = 0,
    batch_size: int | None = None,
    progress: bool = False,
) -> Tensor:
    """``num`` generated images as uint8 RGB (see the module docstring for ``conditions``).

    ``sampler`` defaults to the model's default (``ddim`` with its default options);
    ``batch_size`` to what the device's memory holds (:mod:`protodiff.diffusion.batching`).
    """
    from protodiff.diffusion.batching import sampling_batch_size

    require_conditions(model, conditions)
    batch_size = batch_size or sampling_batch_size(model, cap=num)
    chosen = (sampler or DEFAULT_SAMPLER).build(schedule=model.schedule)
    generator = torch.Generator().manual_seed(seed)
    chunks = []
    for start in tqdm(range(0, num, batch_size), desc="generating", unit="batch", disable=not progress, leave=False):
        n = min(batch_size, num - start)
        condition = None
        if model.is_conditional and conditions == "data":
            images = torch.stack([data[i % len(data)][0] for i in range(start, start + n)])
            condition = model.encode(images)
        elif model.is_conditional:
            condition = model.prior.sample(n, generator=generator)
        chunks.append(to_uint8_rgb(model.sample(n, condition=condition, sampler=chosen, generator=generator)))
    return torch.cat(chunks)
