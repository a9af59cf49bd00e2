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

from collections.abc import Sequence
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
from protodiff.explain.coupling import Follow, Follower, check_follow, coupling_for, follow_or_hold
from protodiff.explain.edit import invert_batch, require_vector
from protodiff.explain.effects import check_classifier, enhanced_batch, enhanced_values
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
class Crossings:
    """Where rising curves (S, C) reach half their level, per curve: ``peak`` the first timestep at
    half the curve's maximum (None where the maximum is not above ``floor``); ``final`` the first
    timestep at half its last value, None where that is not a level the curve ends at: a last
    value at or below ``floor``, or one below half the peak (``fell_back``: the edit showed during
    denoising and faded by the end, so half the last value marks nothing)."""

    peak: list[int | None]
    final: list[int | None]
    fell_back: list[bool]


def crossings(timesteps: list[int], curves: Tensor, floor: float = 0.0) -> Crossings:
    """:class:`Crossings` of curves (S, C) over ``timesteps`` (S, descending: denoising order).
    Curves are read in the edit's direction: an enhanced dimension raises its activation, and an
    attribute is followed under the dimension that raises it most."""
    peak, final = curves.max(dim=0).values, curves[-1]
    peaks: list[int | None] = []
    finals: list[int | None] = []
    fell: list[bool] = []
    for c in range(curves.shape[1]):
        top, last = float(peak[c]), float(final[c])
        peaks.append(first_at(timesteps, curves[:, c], top / 2) if top > floor else None)
        fell.append(top > floor and last < top / 2)
        finals.append(first_at(timesteps, curves[:, c], last / 2) if last > floor and not fell[-1] else None)
    return Crossings(peaks, finals, fell)


def first_at(timesteps: list[int], curve: Tensor, level: float) -> int:
    """The first timestep at which ``curve`` (S) reaches ``level`` (which it must reach)."""
    return timesteps[int((curve >= level).nonzero()[0])]


def spread(values: Sequence[int | None]) -> dict[str, Any]:
    """Median and interquartile range of the defined ``values`` (per-image crossing timesteps), and
    how many there were; the statistics are None when none is defined."""
    defined = torch.tensor([v for v in values if v is not None], dtype=torch.float64)
    if not len(defined):
        return {"images": 0, "median": None, "q1": None, "q3": None}
    q1, median, q3 = torch.quantile(defined, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)).tolist()
    return {"images": len(defined), "median": round(median, 1), "q1": round(q1, 1), "q3": round(q3, 1)}


#: What an emergence curve subtracts from the enhanced walk's re-encoding at step t: ``image`` the
#: explained image's own (Patronus, Sec. 4: s(x0_hat_enhanced(t)) - s(x0)); ``trajectory`` that of
#: x0_hat at the same step of the walk under the image's own vector.
AGAINST = ("image", "trajectory")


@dataclass
class Trajectories:
    """What the walk showed, per image (N images, K dimensions, A attributes, S steps at
    ``timesteps``, descending): ``enhanced`` (S, K, N) s_j(x0_hat) with dimension j enhanced,
    ``own`` (S, N, K) s(x0_hat) under the image's own vector; with a classifier, ``enhanced_p``
    (S, K, N, A) and ``own_p`` (S, N, A) the attribute probabilities of the same x0_hat; ``strips``
    (S, K + 1, C, H, W): the first image's x0_hat, original then each dimension enhanced."""

    timesteps: list[int]
    enhanced: Tensor
    own: Tensor
    enhanced_p: Tensor | None
    own_p: Tensor | None
    strips: Tensor

    def activation(self, image: Tensor | None = None) -> Tensor:
        """(S, K, N): s_j(x0_hat) with j enhanced, minus ``image`` (N, K: s(x0) of the images) or,
        when None, minus s_j(x0_hat) of the same step under the own vector."""
        base = self.own if image is None else image.to(self.own).expand_as(self.own)
        return self.enhanced - base.transpose(1, 2)

    def attribute(self, image: Tensor | None = None) -> Tensor:
        """(S, K, N, A): attribute probabilities with each dimension enhanced, minus ``image`` (N, A:
        the images' own) or, when None, minus those of the same step under the own vector."""
        if self.enhanced_p is None or self.own_p is None:
            raise ProtodiffError("emergence: attribute curves need a classifier (--classifier DIR)")
        base = self.own_p if image is None else image.to(self.own_p).expand_as(self.own_p)
        return self.enhanced_p - base.unsqueeze(1)

    def best_dimensions(self) -> list[int]:
        """Per attribute, the dimension whose enhancement raises it most at the end of the walk,
        against the own vector's regeneration (the effect matrix of ``effects``: inversion error cancels)."""
        return self.attribute()[-1].mean(dim=1).argmax(dim=0).tolist()


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
    context: Tensor | None = None,
) -> Trajectories:
    """Sample ``edited`` (from :func:`enhanced_batch`) from ``x_T`` (repeated per block), each edit
    amplified ``guidance`` times away from its ``context`` (default: block 0, the own vectors; a
    followed edit's is :meth:`Coupling.follow <protodiff.explain.coupling.Coupling.follow>`'s),
    re-encoding x0_hat of the whole batch at every step through the sampler's callback."""
    k = edited.shape[1]
    n = len(x_T)
    steps: list[int] = []
    enhanced, own, enhanced_p, own_p, strips = [], [], [], [], []
    rows = torch.arange(k)

    def read(info: StepInfo) -> None:
        s = model.encode(info.x0_hat).vector.view(k + 1, n, k)
        steps.append(info.t)
        strips.append(info.x0_hat.view(k + 1, n, *x_T.shape[1:])[:, 0].cpu())
        enhanced.append(s[1 + rows, :, rows].cpu())  # (K, N): block j + 1, dimension j
        own.append(s[0].cpu())
        if classifier is not None:
            p = classifier.predict_proba(info.x0_hat).view(k + 1, n, -1).cpu()
            enhanced_p.append(p[1:])
            own_p.append(p[0])

    unedited = edited[:n].repeat(k + 1, 1) if context is None else context
    guided_sample(model, unedited, edited, x_T.repeat(k + 1, 1, 1, 1), sampler, guidance, callback=read)
    judged = classifier is not None
    return Trajectories(
        steps,
        torch.stack(enhanced),
        torch.stack(own),
        torch.stack(enhanced_p) if judged else None,
        torch.stack(own_p) if judged else None,
        torch.stack(strips),
    )


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
    coupling: Follower | None = None,
) -> Partial:
    """Diffuse ``images`` to each of ``starts`` timesteps of ``sampler``'s walk, enhance ``dimensions[a]``
    (one per attribute) in their ``vectors`` (the others following as ``coupling`` says, if given),
    denoise from there; every edit of a start in one batch."""
    walk = sampler.timesteps()
    edited = sorted(set(dimensions))
    n, d = len(images), len(edited)
    own = vectors.repeat(d + 1, 1)
    batch = own.clone()  # block 0: own vector; block b + 1: edited[b] enhanced
    for b, j in enumerate(edited):
        batch[(b + 1) * n : (b + 2) * n, j] = high[j]
    batch, context = follow_or_hold(coupling, own, batch)
    noise = randn(images.shape, generator, images)
    column = torch.tensor([edited.index(j) for j in dimensions])
    effects, strips, starts_t = [], [], []
    for position in start_positions(len(walk), starts):
        t = walk[position]
        x_t = model.schedule.q_sample(images, torch.tensor(t), noise)
        out = guided_sample(model, context, batch, x_t.repeat(d + 1, 1, 1, 1), sampler, guidance, timesteps=walk[position:])
        probs = classifier.predict_proba(out).view(d + 1, n, -1)
        change = (probs[1:] - probs[:1]).mean(dim=1)  # (D, A)
        effects.append(change[column, torch.arange(len(dimensions))].cpu())
        strips.append(torch.cat([x_t[:1], out.view(d + 1, n, *images.shape[1:])[:, 0]]).cpu())
        starts_t.append(t)
    order = list(reversed(range(len(starts_t))))  # ascending t
    return Partial(
        [starts_t[p] for p in order], torch.stack(effects)[order], list(dimensions), edited, torch.stack(strips)[order]
    )


def per_image_crossings(timesteps: list[int], curves: Tensor, floor: float = 0.0) -> list[Crossings]:
    """:func:`crossings` of every image's curve: ``curves`` (S, N, C) -> one :class:`Crossings`
    (over the N images) per curve c."""
    s, n, c = curves.shape
    flat = crossings(timesteps, curves.permute(0, 2, 1).reshape(s, c * n), floor)
    return [
        Crossings(flat.peak[i * n : (i + 1) * n], flat.final[i * n : (i + 1) * n], flat.fell_back[i * n : (i + 1) * n])
        for i in range(c)
    ]


def took(curves: Tensor, floor: float = 0.0) -> Tensor:
    """(N, C): whether each image's curve (of ``curves`` (S, N, C)) rises above ``floor`` at some step."""
    return curves.max(dim=0).values > floor


def mean_of(curves: Tensor, counted: Tensor) -> Tensor:
    """(S, C): each curve of ``curves`` (S, N, C) averaged over its ``counted`` (N, C) images
    (NaN where none counts)."""
    weights = counted.to(curves.dtype)
    return (curves * weights).sum(dim=1) / weights.sum(dim=0)


def summarise(timesteps: list[int], curves: Tensor, floor: float = 0.0, counted: Tensor | None = None) -> list[dict[str, Any]]:
    """Per curve of ``curves`` (S, N, C: per image), the JSON entry of ``meta.json``: the mean
    curve's last value, peak and both crossings, and the per-image crossings' spread. The mean
    is taken over the images whose curve rises above ``floor`` (or the ``counted`` (N, C) ones):
    an image the edit cannot change (it has the attribute already) has no emergence to time."""
    counted = took(curves, floor) if counted is None else counted
    mean = mean_of(curves, counted)
    whole = crossings(timesteps, mean.nan_to_num(nan=floor), floor)
    out = []
    for c, each in enumerate(per_image_crossings(timesteps, curves, floor)):
        defined = bool(counted[:, c].any())
        out.append(
            {
                "images": int(counted[:, c].sum()),
                "final": round(float(mean[-1, c]), 4) if defined else None,
                "peak": round(float(mean[:, c].max()), 4) if defined else None,
                "crossing_final_t": whole.final[c],
                "crossing_peak_t": whole.peak[c],
                "fell_back": whole.fell_back[c],
                "per_image": {
                    "crossing_peak_t": spread(each.peak),
                    "crossing_final_t": spread(each.final),
                    "fell_back": sum(each.fell_back),
                },
            }
        )
    return out


def plot_curves(
    timesteps: list[int],
    curves: Tensor,
    labels: list[str],
    title: str,
    path: Path,
    xlabel: str = "timestep t (denoising runs left to right)",
    ylabel: str = "enhanced - original",
    band: Tensor | None = None,
) -> None:
    """One line per curve against the timestep, x axis reversed so that denoising reads left to
    right; ``band`` (2, S, C), when given, shades each curve's range (the per-image quartiles)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for c, label in enumerate(labels):
        (line,) = ax.plot(timesteps, curves[:, c].numpy(), label=label, linestyle="-" if c < 10 else "--")
        if band is not None:
            ax.fill_between(timesteps, band[0, :, c].numpy(), band[1, :, c].numpy(), color=line.get_color(), alpha=0.12)
    ax.invert_xaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=6, ncol=2)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def quartiles(curves: Tensor) -> Tensor:
    """(2, S, C): the 25th and 75th percentiles over images of per-image curves (S, N, C)."""
    return torch.quantile(curves.float(), torch.tensor([0.25, 0.75]), dim=1)


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
        #: What the dimensions an edit does not enhance do, as in every edit (EditSettings):
        #: ``none`` holds them, ``regression`` moves them with the enhanced one (its concept group).
        follow: Follow = "none"
        #: What the enhanced walk's re-encoding is compared with at each step: ``image``, the
        #: explained image itself (Patronus' definition); ``trajectory``, x0_hat at the same step
        #: of the walk under the image's own vector (which shares the early steps' blur).
        against: str = "image"
        #: An image counts toward an attribute's per-image spread when the edit raises the
        #: attribute's probability by more than this at some step (one that already had it cannot).
        min_effect: float = 0.5
        #: Partial regeneration from this many start timesteps of the sampler's walk (0: off; needs --classifier).
        partial_starts: int = 0
        #: Dimensions shown in the strips without a classifier (those that move their own activation most).
        strip_dimensions: int = 6

        def __post_init__(self) -> None:
            at_least(0.0, guidance=self.guidance, min_effect=self.min_effect)
            check_follow(self.follow)
            if not 0.0 <= self.quantile <= 1.0 or self.reference < 1:
                raise ValueError("quantile must be in [0, 1] and reference positive")
            if self.partial_starts < 0 or self.strip_dimensions < 1:
                raise ValueError("partial_starts must be >= 0 and strip_dimensions positive")
            if self.against not in AGAINST:
                raise ValueError(f"against must be one of {', '.join(AGAINST)}, not {self.against!r}")

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
        coupling = coupling_for(c.follow, reference)
        edited, context = follow_or_hold(coupling, vectors.repeat(len(high) + 1, 1), enhanced_batch(vectors, high))
        traj = read_walk(model, edited, x_T, sampler, classifier, c.guidance, context)
        on_image = c.against == "image"
        names = model.conditioner.names
        activation = traj.activation(vectors.cpu() if on_image else None).transpose(1, 2)  # (S, N, K)
        versus = "s(x0)" if on_image else "s(x0_hat under the own vector)"
        meta: dict[str, Any] = {
            "timesteps": traj.timesteps,
            "images": len(batch),
            "guidance": c.guidance,
            "follow": c.follow,
            "against": c.against,
            "dimensions": dict(zip(names, summarise(traj.timesteps, activation))),
        }
        tensors = {"activation": activation, "timesteps": torch.tensor(traj.timesteps), "strips": traj.strips}
        figures = {
            "dimensions.png": lambda path: plot_curves(
                traj.timesteps,
                activation.mean(dim=1),
                names,
                f"s_j(x0_hat, dimension j enhanced) - {versus}, mean over {len(batch)} images",
                path,
                ylabel="activation change",
            )
        }
        shown = activation[-1].mean(dim=0).abs().argsort(descending=True)[: c.strip_dimensions].tolist()
        rows = [names[j] for j in shown]
        if classifier is not None:
            best = traj.best_dimensions()
            change = traj.attribute(classifier.predict_proba(batch).cpu() if on_image else None)  # (S, K, N, A)
            a_index = torch.arange(len(best))
            curves = change[:, best, :, a_index].permute(1, 2, 0)  # (S, N, A): each attribute under its dimension
            attributes = list(classifier.attribute_names)
            meta["min_effect"] = c.min_effect
            # the other reading of the same walk over the same images, for comparison (its mean curve's crossings)
            counted = took(curves, c.min_effect)
            other = traj.attribute(None if on_image else classifier.predict_proba(batch).cpu())
            other_curves = mean_of(other[:, best, :, a_index].permute(1, 2, 0), counted)
            compared = crossings(traj.timesteps, other_curves.nan_to_num(nan=c.min_effect), c.min_effect)
            meta["attributes"] = {
                a: {
                    "dimension": names[j],
                    **entry,
                    AGAINST[on_image]: {"crossing_final_t": f, "crossing_peak_t": p, "fell_back": fell},
                }
                for a, j, entry, f, p, fell in zip(
                    attributes,
                    best,
                    summarise(traj.timesteps, curves, c.min_effect, counted),
                    compared.final,
                    compared.peak,
                    compared.fell_back,
                )
            }
            tensors["attribute"], tensors["attribute_images"] = change.mean(dim=2), curves
            chosen = [curves[:, counted[:, i], i] for i in range(len(attributes))]
            band = torch.stack(
                [quartiles(x.unsqueeze(2))[:, :, 0] if x.shape[1] else torch.full((2, len(x)), float("nan")) for x in chosen],
                dim=2,
            )
            figures["attributes.png"] = lambda path: plot_curves(
                traj.timesteps,
                mean_of(curves, counted),
                attributes,
                f"attribute probability: enhanced - {'the image' if on_image else 'own walk'}\n"
                f"mean and quartiles over the images whose curve rises above {c.min_effect}",
                path,
                ylabel=f"p(x0_hat enhanced) - {'p(x0)' if on_image else 'p(x0_hat own)'}",
                band=band,
            )
            shown = sorted(set(best))
            rows = [f"{names[j]} ({', '.join(a for a, b in zip(attributes, best) if b == j)})" for j in shown]
        strip = traj.strips[:, [0, *(j + 1 for j in shown)]]
        figures["strips.png"] = lambda path: save_strip(
            path, traj.timesteps, strip, ["original", *rows], "x0_hat of image 0 during denoising"
        )
        if c.partial_starts:
            assert classifier is not None
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
                coupling=coupling,
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
