"""``emergence``: *when* during denoising an edit shows, per dimension and per attribute.

Each explained image is regenerated from its inverted x_T twice over: under its own vector and
with each dimension enhanced (its plausible maximum, as in ``effects``), all in one batch. At every
sampler step the callback re-encodes x0_hat (and, with a classifier, judges it), so the curves
come from the sampler's own walk, not a copy of it. For dimension j the curve is the mean
difference, enhanced minus original, of s_j(x0_hat); for attribute a it is the difference of a's
probability under the dimension that moves a most at the end. The crossing is the first timestep
at which a curve reaches half its final value (denoising runs from t = T down to 0, so a larger
crossing timestep means the edit shows earlier).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from protodiff.config import ComponentSpec, component
from protodiff.contracts.dataset import LabeledImages
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.contracts.sampler import StepInfo
from protodiff.encoding import encode_split
from protodiff.explain.edit import invert_batch, require_vector
from protodiff.explain.effects import check_classifier, enhanced_values
from protodiff.hookspecs import hookimpl
from protodiff.registry import Registries

if TYPE_CHECKING:
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


def crossing(timesteps: list[int], curves: Tensor) -> list[int | None]:
    """For curves (S, C) over ``timesteps`` (S, descending), the first timestep at which each
    reaches half its final value in the final value's direction (None for a flat curve)."""
    final = curves[-1]
    reached = curves * torch.sign(final) >= final.abs() / 2
    out = []
    for c in range(curves.shape[1]):
        hits = reached[:, c].nonzero()
        out.append(None if float(final[c]) == 0 or not len(hits) else timesteps[int(hits[0])])
    return out


@dataclass
class Trajectories:
    """What the walk showed: ``activation`` (S, K) per-dimension curves and ``attribute`` (S, K, A)
    curves (enhanced minus original, averaged over images) at ``timesteps`` (S, descending)."""

    timesteps: list[int]
    activation: Tensor
    attribute: Tensor | None


def enhanced_batch(vectors: Tensor, high: Tensor) -> Tensor:
    """(K + 1) N vectors: block 0 the originals, block j + 1 with dimension j set to ``high[j]``."""
    n, k = vectors.shape
    edited = vectors.repeat(k + 1, 1)
    for j in range(k):
        edited[(j + 1) * n:(j + 2) * n, j] = high[j]
    return edited


@torch.no_grad()
def read_walk(model: ConditionedDiffusion, edited: Tensor, x_T: Tensor, sampler,
              classifier: AttributeClassifier | None = None) -> Trajectories:
    """Sample ``edited`` (from :func:`enhanced_batch`) from ``x_T`` (repeated per block), re-encoding
    x0_hat of the whole batch at every step through the sampler's callback."""
    k = edited.shape[1]
    n = len(x_T)
    steps, activation, attribute = [], [], []

    def read(info: StepInfo) -> None:
        s = model.encode(info.x0_hat).vector.view(k + 1, n, k).mean(dim=1)  # (K + 1, K)
        steps.append(info.t)
        activation.append((s[1:] - s[:1]).diagonal().cpu())
        if classifier is not None:
            p = classifier.predict_proba(info.x0_hat).view(k + 1, n, -1).mean(dim=1)
            attribute.append(p[1:] - p[:1])

    model.sample(condition=edited, x_T=x_T.repeat(k + 1, 1, 1, 1), sampler=sampler, callback=read)
    return Trajectories(steps, torch.stack(activation), torch.stack(attribute) if attribute else None)


def trajectories(model: ConditionedDiffusion, images: Tensor, *, sampler, high: Tensor,
                 classifier: AttributeClassifier | None = None) -> Trajectories:
    """Invert ``images``, then sample the originals and every enhanced version in one batch."""
    require_vector(model, "emergence")
    vectors, x_T = invert_batch(model, images.to(model.device), sampler)
    return read_walk(model, enhanced_batch(vectors, high), x_T, sampler, classifier)


def attribute_curves(traj: Trajectories) -> tuple[Tensor, list[int]]:
    """(S, A) curve of each attribute under the dimension that moves it most at the end, and those dimensions."""
    best = traj.attribute[-1].argmax(dim=0)  # (A,)
    return traj.attribute[:, best, torch.arange(len(best))], best.tolist()


def plot_curves(timesteps: list[int], curves: Tensor, labels: list[str], title: str, path: Path) -> None:
    """One line per curve against the timestep, x axis reversed so that denoising reads left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for c, label in enumerate(labels):
        ax.plot(timesteps, curves[:, c].numpy(), label=label)
    ax.invert_xaxis()
    ax.set_xlabel("timestep t (denoising runs left to right)")
    ax.set_ylabel("enhanced - original")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


class EmergenceExplainer(Explainer):
    """When an enhanced dimension (and the attribute it moves) appears in x0_hat during denoising."""

    @dataclass
    class Config:
        quantile: float = 1.0
        reference: int = 256
        sampler: ComponentSpec = component("sampler", "ddim")

        def __post_init__(self) -> None:
            if not 0.0 <= self.quantile <= 1.0 or self.reference < 1:
                raise ValueError("quantile must be in [0, 1] and reference positive")

    def explain(self, model: ConditionedDiffusion, batch: Tensor, *, data: LabeledImages | None = None,
                classifier: AttributeClassifier | None = None) -> Explanation:
        c = self.config
        if classifier is not None:
            check_classifier(classifier, getattr(data, "attribute_names", None))
        reference = encode_split(model, data, limit=c.reference).vectors if data is not None else model.encode(batch).vector
        traj = trajectories(model, batch, sampler=c.sampler.build(schedule=model.schedule),
                            high=enhanced_values(reference, c.quantile), classifier=classifier)
        names = model.conditioner.names
        meta = {"timesteps": traj.timesteps, "images": len(batch),
                "dimensions": {name: {"final": round(float(traj.activation[-1, j]), 4), "crossing_t": t}
                               for j, (name, t) in enumerate(zip(names, crossing(traj.timesteps, traj.activation)))}}
        tensors = {"activation": traj.activation, "timesteps": torch.tensor(traj.timesteps)}
        figures = {"dimensions.png": lambda path: plot_curves(traj.timesteps, traj.activation, names,
                                                              "s_j(x0_hat): enhanced - original", path)}
        if traj.attribute is not None:
            curves, best = attribute_curves(traj)
            attributes = list(classifier.attribute_names)
            meta["attributes"] = {a: {"dimension": names[j], "final": round(float(curves[-1, i]), 4), "crossing_t": t}
                                  for i, (a, j, t) in enumerate(zip(attributes, best, crossing(traj.timesteps, curves)))}
            tensors["attribute"] = traj.attribute
            figures["attributes.png"] = lambda path: plot_curves(traj.timesteps, curves, attributes,
                                                                 "attribute probability: enhanced - original", path)
        return Explanation("emergence", tensors, meta, figures)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("emergence", EmergenceExplainer)
