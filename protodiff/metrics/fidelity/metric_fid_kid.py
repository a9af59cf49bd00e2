"""``fid`` and ``kid``: generated images against a real split, through torch-fidelity.

Protocol (Patronus; see docs/reference.md): 10k generated images against the test set, Inception
pool3 features. Which images are generated (``conditions``) is explained in :mod:`.images`; which
feature space they are compared in (``extractor``) in :mod:`.feature_extractors`. Images are
generated with the sampler the options name, else the run's (``EvalContext.sampler``).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor
from torch.utils.data import Dataset

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.config import ComponentSpec, optional_component, to_dict
from protodiff.contracts.metric import EvalContext, Metric, flag
from protodiff.errors import ProtodiffError
from protodiff.metrics.fidelity.feature_extractors import INCEPTION, Identity, resolve_extractor
from protodiff.metrics.fidelity.images import (
    DEFAULT_SAMPLER,
    Conditions,
    TensorImages,
    generate_images,
    real_images,
    require_conditions,
)

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.contracts.feature_extractor import FeatureExtractor
    from protodiff.model import ConditionedDiffusion


def fidelity_scores(
    generated: Tensor | Dataset,
    real: Tensor | Dataset,
    extractor: FeatureExtractor,
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
            # torch-fidelity logs "Frechet Inception Distance" whatever the features: only for the standard one.
            verbose=progress and extractor.standard,
            **extractor.calculate_metrics_kwargs(),
        )
    except RuntimeError as exc:
        if "state_dict" not in str(exc):
            raise
        raise ProtodiffError(
            f"{extractor.weights}: not the weights of feature extractor {extractor.name!r} ({' '.join(str(exc).split())[:160]})"
        ) from None


#: Pixel (identity) features whose covariance would need more memory than this are refused before
#: anything is generated: at 64 px RGB it is 1.1 GiB, at 256 px about 288 GiB.
MAX_COVARIANCE_BYTES = 4 * 2**30


class FidelityMetric(Metric):
    """Shared by FID and KID: what to generate, what to compare it with, in which feature space."""

    #: Patronus compares generated images with the test set.
    default_split: ClassVar[str] = "test"
    kind: ClassVar[str]

    @dataclass
    class Config:
        #: Generated images (Patronus: 10k).
        num_samples: int = flag(10000, "fid/kid: generated images [10000].")
        #: Real images: the first this many of the split (null: the whole split, as Patronus).
        num_real: int | None = flag(None, "fid/kid: real images [the whole split].")
        conditions: Conditions = flag(
            "data", "fid/kid on a conditional model: conditions of real images (reconstruction) or the latent prior [data]."
        )
        extractor: str = flag(
            INCEPTION, "fid/kid feature extractor: inception-v3-compat (FID), identity, attribute-classifier, timm-<model>."
        )
        #: Local weights of the extractor (the Inception file, a timm state dict, a classifier dir).
        extractor_weights: str | None = flag(
            None,
            "Local weights of the --extractor (file, or classifier directory).",
            aliases={
                "inception_weights": (
                    "Path of torch-fidelity's Inception weights file (real FID offline).",
                    {"extractor": INCEPTION},
                )
            },
        )
        #: null: the run's sampler (``EvalContext.sampler``), else ``ddim`` with its defaults.
        sampler: ComponentSpec | None = optional_component("sampler")
        #: Images per batch, generated and through the extractor (null: generate as many as the
        #: device's free memory holds, see protodiff.diffusion.batching; 64 through the extractor).
        batch_size: int | None = None

        def __post_init__(self) -> None:
            if self.num_samples < 2 or (self.num_real is not None and self.num_real < 2):
                raise ValueError("num_samples and num_real must be at least 2 (a covariance needs two samples)")
            if self.batch_size is not None and self.batch_size < 1:
                raise ValueError("batch_size must be positive")

    def sampler(self, context: EvalContext) -> ComponentSpec:
        return self.config.sampler or context.sampler or DEFAULT_SAMPLER

    def extractor(self) -> FeatureExtractor:
        return resolve_extractor(self.config.extractor, self.config.extractor_weights)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        extractor = self.extractor()
        require_conditions(model, self.config.conditions)
        if isinstance(extractor, Identity):
            width = model.in_channels * model.image_size**2
            needed = width**2 * 8  # the features' covariance, float64 as torch-fidelity computes it
            if needed > MAX_COVARIANCE_BYTES:
                raise ProtodiffError(
                    f"{self.kind}: identity features of {model.in_channels}x{model.image_size}x{model.image_size} images "
                    f"are {width:,}-d and their covariance alone needs {needed / 2**30:,.0f} GiB; choose another "
                    "extractor (attribute-classifier, timm-<model>) or a smaller data.image_size"
                )

    def images(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> tuple[Tensor, Tensor]:
        """(generated, real) uint8 images, made once per evaluation for FID and KID alike."""
        c = self.config
        conditions = c.conditions if model.is_conditional else None
        sampler, seed, progress = self.sampler(context), context.seed, context.progress

        def generate() -> Tensor:
            return generate_images(
                model, c.num_samples, data=data, conditions=c.conditions, sampler=sampler,
                seed=seed, batch_size=c.batch_size, progress=progress,
            )  # fmt: skip

        key = ("generated", id(model), id(data), c.num_samples, conditions, repr(to_dict(sampler)), seed)
        generated = context.cache.get(key, generate)
        real = context.cache.get(("real", id(data), c.num_real), lambda: real_images(data, c.num_real, progress=progress))
        return generated, real

    def score_options(self) -> dict[str, Any]:
        """The metric-specific arguments of :func:`fidelity_scores`."""
        return {self.kind: True}

    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        extractor = self.extractor()
        generated, real = self.images(model, data, context)
        scores = fidelity_scores(
            generated, real, extractor, seed=context.seed, device=context.device, batch_size=self.config.batch_size or 64,
            progress=context.progress, **self.score_options(),
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
            "sampler": to_dict(self.sampler(context)),
            "seed": context.seed,
            "protocol": self.protocol(len(generated), len(real)),
        }

    @abstractmethod
    def values(self, scores: dict[str, float]) -> dict[str, Any]:
        """The metric's numbers out of torch-fidelity's result dict."""

    @abstractmethod
    def protocol(self, num_generated: int, num_real: int) -> dict[str, Any]:
        """The parameters that make the number comparable (recorded beside it)."""


class FID(FidelityMetric):
    """Fréchet distance between the feature statistics of generated and real images."""

    kind: ClassVar[str] = "fid"

    def values(self, scores: dict[str, float]) -> dict[str, Any]:
        return {"value": scores["frechet_inception_distance"]}

    def protocol(self, num_generated: int, num_real: int) -> dict[str, Any]:
        return {
            "implementation": "torch-fidelity calculate_metrics(fid=True)",
            "source": "Patronus: 10k generated images against the test set, Inception pool3",
        }


class KID(FidelityMetric):
    """Kernel distance (unbiased MMD^2, cubic polynomial kernel) over random subsets."""

    kind: ClassVar[str] = "kid"

    @dataclass
    class Config(FidelityMetric.Config):
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


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.metric.add("fid", FID)
    registry.metric.add("kid", KID)
