"""``emergence``: *when* during denoising an edit shows, per dimension and per attribute.

Each explained image is regenerated from its inverted x_T twice over: under its own vector and
with each dimension enhanced (its plausible maximum, as in ``effects``), all in one batch. At every
sampler step the callback re-encodes x0_hat (and, with a classifier, judges it), so the curves
come from the sampler's own walk, not a copy of it. For dimension j the curve is the mean
difference, enhanced minus original, of s_j(x0_hat); for attribute a it is the difference of a's
probability under the dimension that moves a most at the end. The crossing is the first timestep
at which a curve reaches half its final value (denoising runs from t = T down to 0, so a larger
crossing timestep means the edit shows earlier). The strips show x0_hat of the first image along
the walk, under its own vector and under the enhanced dimensions the figure names.

Partial regeneration (``partial_starts``, needs a classifier) asks the converse: how late may an
edit start and still take? Each image is diffused to a start timestep t with noise drawn from the
command's seed (q-sample), its vector edited (the dimension that moves each attribute most,
enhanced as above), and it is denoised from t along the rest of the sampler's walk, for a range of
starts. Per attribute: the edit's effect as a function of t, and the *latest* start (smallest t)
at which it still reaches half the effect it has when started from the first timestep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.config import ComponentSpec, component
from protodiff.contracts.dataset import LabeledImages
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.contracts.sampler import Sampler, StepInfo, randn
from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError
from protodiff.explain.edit import invert_batch, require_vector
from protodiff.explain.effects import check_classifier, enhanced_values
from protodiff.figures import save_image_grid
from protodiff.model import EDIT_GUIDANCE
from protodiff.validation import at_least

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
    curves (enhanced minus original, averaged over images) at ``timesteps`` (S, descending), and
    ``strips`` (S, K + 1, C, H, W): the first image's x0_hat, original then each dimension enhanced."""

    timesteps: list[int]
    activation: Tensor
    attribute: Tensor | None
    strips: Tensor


def enhanced_batch(vectors: Tensor, high: Tensor) -> Tensor:
    """(K + 1) N vectors: block 0 the originals, block j + 1 with dimension j set to ``high[j]``."""
    n, k = vectors.shape
    edited = vectors.repeat(k + 1, 1)
    for j in range(k):
        edited[(j + 1) * n : (j + 2) * n, j] = high[j]
    return edited


@torch.no_grad()
def guided_sample(
    model: ConditionedDiffusion,
    unedited: Tensor,
    edited: Tensor,
    x_T: Tensor,
    sampler: Sampler,
    guidance: float,
    **options: Any,
) -> Tensor:
    """Images under the ``edited`` vectors from ``x_T``, each edit's difference from its ``unedited``
    vector amplified ``guidance`` times, as ``model.edit`` makes an edit; ``options`` go to the
    sampler (``timesteps``, ``callback``)."""
    net_fn = model.edit_net_fn(unedited, edited, len(edited), guidance)
    with torch.inference_mode():
        return sampler.sample(net_fn, x_T.to(model.device), prediction=model.schedule.config.prediction, **options)


def read_walk(
    model: ConditionedDiffusion,
    edited: Tensor,
    x_T: Tensor,
    sampler: Sampler,
    classifier: AttributeClassifier | None = None,
    guidance: float = 1.0,
) -> Trajectories:
    """Sample ``edited`` (from :func:`enhanced_batch`) from ``x_T`` (repeated per block), each edit
    amplified ``guidance`` times, re-encoding x0_hat of the whole batch at every step through the
    sampler's callback."""
    k = edited.shape[1]
    n = len(x_T)
    steps, activation, attribute, strips = [], [], [], []

    def read(info: StepInfo) -> None:
        s = model.encode(info.x0_hat).vector.view(k + 1, n, k).mean(dim=1)  # (K + 1, K)
        steps.append(info.t)
        strips.append(info.x0_hat.view(k + 1, n, *x_T.shape[1:])[:, 0].cpu())
        activation.append((s[1:] - s[:1]).diagonal().cpu())
        if classifier is not None:
            p = classifier.predict_proba(info.x0_hat).view(k + 1, n, -1).mean(dim=1)
            attribute.append(p[1:] - p[:1])

    guided_sample(model, edited[:n].repeat(k + 1, 1), edited, x_T.repeat(k + 1, 1, 1, 1), sampler, guidance, callback=read)
    return Trajectories(steps, torch.stack(activation), torch.stack(attribute) if attribute else None, torch.stack(strips))


@dataclass
class Partial:
    """Partial regeneration: ``effect`` (P, A), attribute a's change when its ``dimensions[a]`` is
    enhanced and the image denoised from start ``starts[p]`` (ascending); ``strips`` (P, 2 + D, C, H,
    W) the first image at each start: x_t, regenerated under its own vector, then under each of
    the ``edited`` dimensions enhanced."""

    starts: list[int]
    effect: Tensor
    dimensions: list[int]
    edited: list[int]
    strips: Tensor

    def latest(self) -> list[int | None]:
        """Per attribute, the smallest start t at which the edit reaches half its effect from the
        first start (the last row: starts ascend, so :func:`crossing` reads it as the final value)."""
        return crossing(self.starts, self.effect)


def start_positions(length: int, count: int) -> list[int]:
    """``count`` positions along a walk of ``length`` steps, evenly spread, the first step included."""
    return torch.linspace(0, length - 1, min(count, length)).round().long().unique().tolist()


@torch.no_grad()
def partial_regeneration(
    model: ConditionedDiffusion,
    images: Tensor,
    vectors: Tensor,
    *,
    high: Tensor,
    dimensions: list[int],
    classifier: AttributeClassifier,
    sampler: Sampler,
    starts: int,
    generator: torch.Generator | None = None,
    guidance: float = 1.0,
) -> Partial:
    """Diffuse ``images`` to each of ``starts`` timesteps of ``sampler``'s walk, enhance ``dimensions[a]``
    (one per attribute) in their ``vectors``, denoise from there; every edit of a start in one batch."""
    walk = sampler.timesteps()
    edited = sorted(set(dimensions))
    n, d = len(images), len(edited)
    batch = vectors.repeat(d + 1, 1)  # block 0: own vector; block b + 1: edited[b] enhanced
    for b, j in enumerate(edited):
        batch[(b + 1) * n : (b + 2) * n, j] = high[j]
    noise = randn(images.shape, generator, images)
    column = torch.tensor([edited.index(j) for j in dimensions])
    effects, strips, starts_t = [], [], []
    for position in start_positions(len(walk), starts):
        t = walk[position]
        x_t = model.schedule.q_sample(images, torch.tensor(t), noise)
        out = guided_sample(
            model, vectors.repeat(d + 1, 1), batch, x_t.repeat(d + 1, 1, 1, 1), sampler, guidance, timesteps=walk[position:]
        )
        probs = classifier.predict_proba(out).view(d + 1, n, -1)
        change = (probs[1:] - probs[:1]).mean(dim=1)  # (D, A)
        effects.append(change[column, torch.arange(len(dimensions))].cpu())
        strips.append(torch.cat([x_t[:1], out.view(d + 1, n, *images.shape[1:])[:, 0]]).cpu())
        starts_t.append(t)
    order = list(reversed(range(len(starts_t))))  # ascending t
    return Partial(
        [starts_t[p] for p in order], torch.stack(effects)[order], list(dimensions), edited, torch.stack(strips)[order]
    )


def attribute_curves(traj: Trajectories) -> tuple[Tensor, list[int]]:
    """(S, A) curve of each attribute under the dimension that moves it most at the end, and those dimensions."""
    best = traj.attribute[-1].argmax(dim=0)  # (A,)
    return traj.attribute[:, best, torch.arange(len(best))], best.tolist()


def plot_curves(
    timesteps: list[int],
    curves: Tensor,
    labels: list[str],
    title: str,
    path: Path,
    xlabel: str = "timestep t (denoising runs left to right)",
) -> None:
    """One line per curve against the timestep, x axis reversed so that denoising reads left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for c, label in enumerate(labels):
        ax.plot(timesteps, curves[:, c].numpy(), label=label)
    ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("enhanced - original")
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_strip(path: Path, timesteps: list[int], strips: Tensor, rows: list[str], title: str, most: int = 10) -> None:
    """One column per timestep (at most ``most``, evenly picked), one row per entry of ``rows``."""
    picks = start_positions(len(timesteps), most)
    columns = [(f"t={timesteps[p]}", strips[p]) for p in picks]
    save_image_grid(path, columns, per_row=1, title=f"{title}; rows: {', '.join(rows)}")


class EmergenceExplainer(Explainer):
    """When an enhanced dimension (and the attribute it moves) appears in x0_hat during denoising."""

    @dataclass
    class Config:
        #: The enhanced value of a dimension: this quantile of its values over the reference images.
        quantile: float = 1.0
        #: Real images of the split over which each dimension's plausible maximum is taken.
        reference: int = 256
        sampler: ComponentSpec = component("sampler", "ddim")
        #: Amplify each edit's difference, as every edit does (EditSettings): what the other
        #: explainers show is what this one follows through the walk.
        guidance: float = EDIT_GUIDANCE
        #: Partial regeneration from this many start timesteps of the sampler's walk (0: off; needs --classifier).
        partial_starts: int = 0
        #: Dimensions shown in the strips without a classifier (those that move their own activation most).
        strip_dimensions: int = 6

        def __post_init__(self) -> None:
            at_least(0.0, guidance=self.guidance)
            if not 0.0 <= self.quantile <= 1.0 or self.reference < 1:
                raise ValueError("quantile must be in [0, 1] and reference positive")
            if self.partial_starts < 0 or self.strip_dimensions < 1:
                raise ValueError("partial_starts must be >= 0 and strip_dimensions positive")

    def explain(
        self,
        model: ConditionedDiffusion,
        batch: Tensor,
        *,
        data: LabeledImages | None = None,
        classifier: AttributeClassifier | None = None,
        generator: torch.Generator | None = None,
    ) -> Explanation:
        c = self.config
        if classifier is not None:
            check_classifier(classifier, getattr(data, "attribute_names", None))
        elif c.partial_starts:
            raise ProtodiffError(
                "emergence: partial regeneration judges attributes; pass --classifier DIR or leave partial_starts at 0"
            )
        require_vector(model, "emergence")
        sampler = c.sampler.build(schedule=model.schedule)
        reference = encode_split(model, data, limit=c.reference).vectors if data is not None else model.encode(batch).vector
        high = enhanced_values(reference, c.quantile).to(model.device)
        batch = batch.to(model.device)
        vectors, x_T = invert_batch(model, batch, sampler)
        traj = read_walk(model, enhanced_batch(vectors, high), x_T, sampler, classifier, c.guidance)
        names = model.conditioner.names
        meta = {
            "timesteps": traj.timesteps,
            "images": len(batch),
            "guidance": c.guidance,
            "dimensions": {
                name: {"final": round(float(traj.activation[-1, j]), 4), "crossing_t": t}
                for j, (name, t) in enumerate(zip(names, crossing(traj.timesteps, traj.activation)))
            },
        }
        tensors = {"activation": traj.activation, "timesteps": torch.tensor(traj.timesteps), "strips": traj.strips}
        figures = {
            "dimensions.png": lambda path: plot_curves(
                traj.timesteps, traj.activation, names, "s_j(x0_hat): enhanced - original", path
            )
        }
        shown = traj.activation[-1].abs().argsort(descending=True)[: c.strip_dimensions].tolist()
        rows = [names[j] for j in shown]
        if traj.attribute is not None:
            curves, best = attribute_curves(traj)
            attributes = list(classifier.attribute_names)
            meta["attributes"] = {
                a: {"dimension": names[j], "final": round(float(curves[-1, i]), 4), "crossing_t": t}
                for i, (a, j, t) in enumerate(zip(attributes, best, crossing(traj.timesteps, curves)))
            }
            tensors["attribute"] = traj.attribute
            figures["attributes.png"] = lambda path: plot_curves(
                traj.timesteps, curves, attributes, "attribute probability: enhanced - original", path
            )
            shown = sorted(set(best))
            rows = [f"{names[j]} ({', '.join(a for a, b in zip(attributes, best) if b == j)})" for j in shown]
        strip = traj.strips[:, [0, *(j + 1 for j in shown)]]
        figures["strips.png"] = lambda path: save_strip(
            path, traj.timesteps, strip, ["original", *rows], "x0_hat of image 0 during denoising"
        )
        if c.partial_starts:
            partial = partial_regeneration(
                model,
                batch,
                vectors,
                high=high,
                dimensions=best,
                classifier=classifier,
                sampler=sampler,
                starts=c.partial_starts,
                generator=generator,
                guidance=c.guidance,
            )
            meta["partial"] = {
                "starts": partial.starts,
                "attributes": {
                    a: {"dimension": names[j], "effect": [round(float(v), 4) for v in partial.effect[:, i]], "latest_t": t}
                    for i, (a, j, t) in enumerate(zip(attributes, best, partial.latest()))
                },
            }
            tensors["partial_effect"], tensors["partial_strips"] = partial.effect, partial.strips
            figures["partial.png"] = lambda path: plot_curves(
                partial.starts,
                partial.effect,
                attributes,
                "partial regeneration: effect of the edit by start",
                path,
                xlabel="start timestep t of the edited denoising (later starts to the right)",
            )
            figures["partial_strips.png"] = lambda path: save_strip(
                path,
                partial.starts,
                partial.strips,
                ["x_t", "own vector", *rows],  # partial.edited is `shown`
                "image 0 regenerated from each start t",
                most=len(partial.starts),
            )
        return Explanation("emergence", tensors, meta, figures)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("emergence", EmergenceExplainer)
