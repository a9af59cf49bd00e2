"""What each condition dimension means, and whether the condition carries an image's attributes.

``dimension-auroc``
    For every latent dimension ``j`` and binary attribute ``i`` of held-out images, the AUROC of
    ``z_j`` as a score for ``y_i``: 1 means the dimension is high exactly when the attribute is
    present (a prototype that *is* that concept), 0 that it is high exactly when it is absent,
    0.5 that it ignores it. This is the table that shows which prototype responds to which
    ground-truth attribute; TAD condenses it into one number.
``reconstruction-agreement``
    Regenerate held-out images from their condition alone (fresh noise, so nothing but the
    condition links the two), and ask an attribute classifier, trained independently on the
    dataset, whether each attribute is the same in the original and its regeneration. The same is
    done with the conditions of *other* images (each image's condition moved one place along),
    which gives the agreement expected by chance at the attributes' frequencies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm.auto import tqdm

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.config import ComponentSpec, optional_component
from protodiff.contracts.metric import EvalContext, Metric
from protodiff.errors import ProtodiffError
from protodiff.metrics.latent.latents import cached_latents, require_attributes, require_latent
from protodiff.validation import at_least

if TYPE_CHECKING:
    from protodiff.contracts.dataset import DatasetSource, LabeledImages
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


def auroc_stderr(auroc: float, positives: int, negatives: int) -> float:
    """The standard error of an AUROC from ``positives`` and ``negatives`` (Hanley & McNeil 1982,
    eq. 2), so that two methods' best dimensions can be told apart or called even."""
    a = max(auroc, 1.0 - auroc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    variance = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives)
    return float(np.sqrt(max(variance, 0.0)))


class DimensionAUROC(Metric):
    """AUROC of every condition dimension against every attribute on held-out images."""

    @dataclass
    class Config:
        num_latents: int = 10000
        batch_size: int = 256

        def __post_init__(self) -> None:
            at_least(2, num_latents=self.num_latents)  # an AUROC needs both classes
            at_least(1, batch_size=self.batch_size)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        require_latent(model)
        require_attributes(data)

    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        from sklearn.metrics import roc_auc_score

        latents = cached_latents(model, data, context, self.config.num_latents, batch_size=self.config.batch_size)
        matrix = np.full((len(latents.attribute_names), len(latents.dimension_names)), np.nan)
        for i in range(matrix.shape[0]):
            y = latents.attributes[:, i]
            if np.unique(y).size == 2:
                matrix[i] = [roc_auc_score(y, latents.vectors[:, j]) for j in range(matrix.shape[1])]
        per_attribute = {}
        for i, name in enumerate(latents.attribute_names):
            if np.isnan(matrix[i]).all():
                per_attribute[name] = None
                continue
            j = int(np.nanargmax(np.abs(matrix[i] - 0.5)))
            positives = int(latents.attributes[:, i].sum())
            per_attribute[name] = {
                "best_dim": latents.dimension_names[j],
                "auroc": float(matrix[i, j]),
                "stderr": round(auroc_stderr(float(matrix[i, j]), positives, len(latents.vectors) - positives), 4),
            }
        return {
            "label": "dimension AUROC",
            "attributes": latents.attribute_names,
            "dimensions": latents.dimension_names,
            "auroc": [[None if np.isnan(v) else round(float(v), 4) for v in row] for row in matrix],
            "per_attribute": per_attribute,
            "num_latents": len(latents.vectors),
            "protocol": {"score": "roc_auc_score(y_i, z_j): > 0.5 means z_j is higher when attribute i is present"},
        }


class ReconstructionAgreement(Metric):
    """Per attribute: how often an image regenerated from its condition shows the same attribute value."""

    @dataclass
    class Config:
        num_images: int = 500
        #: null: the run's sampler (``EvalContext.sampler``), else ``ddim`` with its defaults.
        sampler: ComponentSpec | None = optional_component("sampler")
        #: A saved attribute classifier (see protodiff.metrics.attribute_classifier); if none, one is trained
        #: on the train split for ``classifier_steps`` steps with the run's seed.
        classifier: str | None = None
        classifier_steps: int = 400
        batch_size: int = 64

        def __post_init__(self) -> None:
            at_least(1, num_images=self.num_images, classifier_steps=self.classifier_steps, batch_size=self.batch_size)

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        require_latent(model)
        require_attributes(data)
        if self.config.classifier is not None:
            from protodiff.metrics.attribute_classifier import META_FILE

            if not (Path(self.config.classifier) / META_FILE).is_file():
                raise ProtodiffError(
                    f"reconstruction-agreement.classifier: {self.config.classifier} is not an attribute "
                    "classifier directory (train one with `protodiff classifier train`)"
                )

    def judge(self, source: DatasetSource | None, seed: int, device: torch.device, progress: bool) -> AttributeClassifier:
        """The saved classifier, or one trained now on the train split of ``source``."""
        from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

        if self.config.classifier is not None:
            return AttributeClassifier.load(self.config.classifier, device=device)
        if source is None:
            raise ProtodiffError("reconstruction-agreement needs a judge: set classifier to a saved attribute classifier")
        train = source.open("train")
        judge = AttributeClassifier.for_dataset(train, ClassifierConfig(steps=self.config.classifier_steps, seed=seed))
        with torch.enable_grad():  # compute() runs under no_grad
            judge.fit(train, progress=progress)
        return judge.to(device)

    @torch.no_grad()
    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        seed, progress = context.seed, context.progress
        judge = self.judge(context.source, seed, context.device, progress)
        count = min(self.config.num_images, len(data))
        sampler = (self.config.sampler or context.sampler or ComponentSpec("sampler", "ddim")).build(schedule=model.schedule)
        generator = torch.Generator().manual_seed(seed)
        originals, own, others = [], [], []
        for start in tqdm(range(0, count, self.config.batch_size), desc="regenerating", disable=not progress, leave=False):
            images = torch.stack([data[i][0] for i in range(start, min(start + self.config.batch_size, count))])
            vectors = model.encode(images).vector
            shifted = torch.roll(vectors, shifts=1, dims=0)
            noise = model.noise(len(images), generator)
            originals.append(images)
            own.append(model.sample(condition=vectors, x_T=noise, sampler=sampler).cpu())
            others.append(model.sample(condition=shifted, x_T=noise, sampler=sampler).cpu())
        truth, same, other = (_decisions(judge, batches) for batches in (originals, own, others))
        labels = torch.stack([data[i][1] for i in range(count)]).numpy().astype(bool)
        names = data.attribute_names
        agreement = (same == truth).mean(0)
        chance = (other == truth).mean(0)
        return {
            "label": "reconstruction agreement",
            "mean": float(agreement.mean()),
            "chance_mean": float(chance.mean()),
            "per_attribute": {
                name: {
                    "agreement": round(float(a), 4),
                    "chance": round(float(c), 4),
                    "judge_accuracy": round(float(acc), 4),
                }
                for name, a, c, acc in zip(names, agreement, chance, (truth == labels).mean(0))
            },
            "num_images": count,
            "protocol": {
                "regeneration": "x ~ sampler(condition of the image, fresh noise)",
                "chance": "the condition of the previous image in the batch, same noise",
                "judge": self.config.classifier
                or f"attribute classifier trained {self.config.classifier_steps} steps on the train split",
            },
        }


def _decisions(judge: AttributeClassifier, batches: list[torch.Tensor]) -> np.ndarray:
    """The judge's present/absent call for every attribute of every image, (N, A) booleans."""
    return (judge.predict_proba(torch.cat(batches)) > 0.5).cpu().numpy()


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.metric.add("dimension-auroc", DimensionAUROC)
    registry.metric.add("reconstruction-agreement", ReconstructionAgreement)
