"""``fid`` and ``kid``: generated images against a real split, through torch-fidelity.

Protocol (Patronus, ../shared/REFERENCE.md): 10k generated images against the test set, Inception
pool3 features. A conditional model only generates from a condition, so ``conditions`` says where
the conditions come from:

``data``
    the conditions of real images of the evaluated split, image ``i mod len(split)`` for sample
    ``i``: a *reconstruction* FID (x_T is fresh noise, so only what the condition carries is
    kept), the setting of Patronus' Table 1 (14.6 on CelebA);
``prior``
    vectors sampled from the model's latent prior (``model.prior``, a
    :class:`~protodiff.priors.LatentPrior`): an unconditional-generation FID ("FID with learned
    s", 4.8 in Patronus' Table 1). A model without a prior is refused.

An unconditional model ignores ``conditions``. Images are generated with the sampler given in
the config (the CLI passes the checkpoint's), from noise drawn from one CPU generator seeded by
the run's seed, so the same seed gives the same images on any device.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from protodiff.config import ComponentSpec, optional_component, to_dict
from protodiff.errors import ProtodiffError
from protodiff.metrics.base import Metric
from protodiff.metrics.extractors import INCEPTION, Extractor, resolve_extractor
from protodiff.metrics.shared import Shared

if TYPE_CHECKING:
    from protodiff.data.base import LabeledImages
    from protodiff.model import ConditionedDiffusion

Conditions = Literal["data", "prior"]
#: What ConditionedDiffusion.sampler() builds when no sampler is named.
DEFAULT_SAMPLER = ComponentSpec("sampler", "ddim")


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
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
    batch_size: int = 64,
    progress: bool = False,
) -> Tensor:
    """``num`` generated images as uint8 RGB (see the module docstring for ``conditions``).

    ``sampler`` defaults to the model's default (``ddim`` with its default options).
    """
    require_conditions(model, conditions)
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


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------
def fidelity_scores(
    generated: Tensor | Dataset,
    real: Tensor | Dataset,
    extractor: Extractor,
    *,
    fid: bool = False,
    kid: bool = False,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    device: torch.device | str = "cpu",
    batch_size: int = 64,
    progress: bool = False,
) -> dict[str, float]:
    """``torch_fidelity.calculate_metrics`` on two sets of inputs (uint8 images for image extractors).

    KID's subset size is capped at the smaller set (torch-fidelity refuses a larger one). The
    feature cache is off: inputs are in-memory tensors with no stable name to cache under.
    """
    from torch_fidelity import calculate_metrics

    inputs = [TensorImages(x) if isinstance(x, Tensor) else x for x in (generated, real)]
    try:
        return calculate_metrics(
            input1=inputs[0],
            input2=inputs[1],
            fid=fid,
            kid=kid,
            kid_subsets=kid_subsets,
            kid_subset_size=min(kid_subset_size, len(inputs[0]), len(inputs[1])),
            rng_seed=seed,
            cuda=torch.device(device).type == "cuda",
            batch_size=batch_size,
            cache=False,
            save_cpu_ram=True,  # no DataLoader worker processes for tensors already in memory
            # torch-fidelity logs "Frechet Inception Distance" whatever the features: only for Inception.
            verbose=progress and extractor.is_inception,
            **extractor.kwargs(),
        )
    except RuntimeError as exc:
        if "state_dict" not in str(exc):
            raise
        raise ProtodiffError(
            f"{extractor.weights}: not the weights of feature extractor {extractor.name!r} "
            f"({' '.join(str(exc).split())[:160]})"
        ) from None


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------
class _FidelityMetric(Metric):
    """Shared by FID and KID: what to generate, what to compare it with, in which feature space."""

    #: Patronus compares generated images with the test set.
    default_split: ClassVar[str] = "test"
    kind: ClassVar[str]

    @dataclass
    class Config:
        #: Generated images (Patronus: 10k).
        num_samples: int = 10000
        #: Real images: the first this many of the split (null: the whole split, as Patronus).
        num_real: int | None = None
        conditions: Conditions = "data"
        extractor: str = INCEPTION
        #: Local weights of the extractor (the Inception file, a timm state dict, a classifier dir).
        extractor_weights: str | None = None
        #: null: the model's default sampler (the CLI passes the checkpoint's sample.sampler).
        sampler: ComponentSpec | None = optional_component("sampler")
        batch_size: int = 64

        def __post_init__(self) -> None:
            if self.num_samples < 2 or (self.num_real is not None and self.num_real < 2):
                raise ValueError("num_samples and num_real must be at least 2 (a covariance needs two samples)")
            if self.batch_size < 1:
                raise ValueError("batch_size must be positive")

    @property
    def sampler(self) -> ComponentSpec:
        return self.config.sampler or DEFAULT_SAMPLER

    def extractor(self) -> Extractor:
        return resolve_extractor(self.config.extractor, self.config.extractor_weights)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        self.extractor()
        require_conditions(model, self.config.conditions)

    def images(
        self, model: ConditionedDiffusion, data: LabeledImages, shared: Shared, seed: int, progress: bool
    ) -> tuple[Tensor, Tensor]:
        """(generated, real) uint8 images, made once per evaluation for FID and KID alike."""
        c = self.config
        conditions = c.conditions if model.is_conditional else None

        def generate() -> Tensor:
            return generate_images(
                model, c.num_samples, data=data, conditions=c.conditions, sampler=self.sampler,
                seed=seed, batch_size=c.batch_size, progress=progress,
            )  # fmt: skip

        key = ("generated", id(model), id(data), c.num_samples, conditions, repr(to_dict(self.sampler)), seed)
        generated = shared.get(key, generate)
        real = shared.get(("real", id(data), c.num_real), lambda: real_images(data, c.num_real, progress=progress))
        return generated, real

    def score_options(self) -> dict[str, Any]:
        """The metric-specific arguments of :func:`fidelity_scores`."""
        return {self.kind: True}

    def compute(
        self,
        model: ConditionedDiffusion,
        data: LabeledImages,
        *,
        shared: Shared | None = None,
        seed: int = 0,
        progress: bool = False,
        **_: Any,
    ) -> dict[str, Any]:
        extractor = self.extractor()
        generated, real = self.images(model, data, shared or Shared(), seed, progress)
        scores = fidelity_scores(
            generated, real, extractor, seed=seed, device=model.device, batch_size=self.config.batch_size,
            progress=progress, **self.score_options(),
        )  # fmt: skip
        return {
            "label": extractor.label(self.kind),
            **self.values(scores),
            "extractor": extractor.describe(),
            "num_generated": len(generated),
            "num_real": len(real),
            "conditions": self.config.conditions if model.is_conditional else "none (unconditional model)",
            "num_distinct_conditions": min(len(generated), len(data))
            if model.is_conditional and self.config.conditions == "data"
            else None,
            "sampler": to_dict(self.sampler),
            "seed": seed,
            "protocol": self.protocol(len(generated), len(real)),
        }

    @abstractmethod
    def values(self, scores: dict[str, float]) -> dict[str, Any]:
        """The metric's numbers out of torch-fidelity's result dict."""

    @abstractmethod
    def protocol(self, num_generated: int, num_real: int) -> dict[str, Any]:
        """The parameters that make the number comparable (recorded beside it)."""


class FID(_FidelityMetric):
    """Fréchet distance between the feature statistics of generated and real images."""

    kind: ClassVar[str] = "fid"

    def values(self, scores: dict[str, float]) -> dict[str, Any]:
        return {"value": scores["frechet_inception_distance"]}

    def protocol(self, num_generated: int, num_real: int) -> dict[str, Any]:
        return {
            "implementation": "torch-fidelity calculate_metrics(fid=True)",
            "source": "Patronus: 10k generated images against the test set, Inception pool3",
        }


class KID(_FidelityMetric):
    """Kernel distance (unbiased MMD^2, cubic polynomial kernel) over random subsets."""

    kind: ClassVar[str] = "kid"

    @dataclass
    class Config(_FidelityMetric.Config):
        #: torch-fidelity's defaults; the subset size is capped at the smaller image set.
        kid_subsets: int = 100
        kid_subset_size: int = 1000

        def __post_init__(self) -> None:
            super().__post_init__()
            if self.kid_subsets < 1 or self.kid_subset_size < 2:
                raise ValueError("kid_subsets must be positive and kid_subset_size at least 2")

    def score_options(self) -> dict[str, Any]:
        return {"kid": True, "kid_subsets": self.config.kid_subsets, "kid_subset_size": self.config.kid_subset_size}

    def values(self, scores: dict[str, float]) -> dict[str, Any]:
        return {"mean": scores["kernel_inception_distance_mean"], "std": scores["kernel_inception_distance_std"]}

    def protocol(self, num_generated: int, num_real: int) -> dict[str, Any]:
        return {
            "implementation": "torch-fidelity calculate_metrics(kid=True), polynomial kernel degree 3",
            "kid_subsets": self.config.kid_subsets,
            "kid_subset_size": min(self.config.kid_subset_size, num_generated, num_real),
        }
