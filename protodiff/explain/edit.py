"""``edit`` and ``interpolate``: regenerate real images under a changed condition vector.

Both work for any conditioner whose condition is a vector (Patronus' prototype activations, a
DiffAE or InfoDiffusion code): the image is inverted to x_T under its own condition with a
deterministic sampler (DDIM, eta = 0), so the unedited vector gives the image back and everything
that differs is the edit's, and the same command gives the same pixels every time.

How an edit regenerates (the sampler, the guidance on the edit's difference, a partial start) is
:class:`EditSettings`, whose defaults are those of ``protodiff explain edit`` and of ``protodiff
explore``'s sliders alike: change them there, and both follow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.config import ComponentSpec, component
from protodiff.contracts.dataset import LabeledImages
from protodiff.contracts.explainer import Explainer, Explanation, flag
from protodiff.contracts.sampler import Callback, Sampler
from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError, UnsupportedModel
from protodiff.explain.coupling import Follow, Follower, check_follow, check_neighbours, coupling_for, local_quantile
from protodiff.explain.dimensions import Change, dimension_index, observed_range, parse_changes, parse_sweep, warn_outside
from protodiff.figures import save_image_grid
from protodiff.model import EDIT_GUIDANCE, ConditionedDiffusion
from protodiff.validation import at_least


def require_vector(model: ConditionedDiffusion, tool: str) -> None:
    """A one-line error unless ``model`` is conditioned on a vector that can be edited."""
    if not model.is_conditional:
        raise UnsupportedModel(f"{tool} edits the condition; this model is unconditional (conditioner 'none')")


def regenerate(model: ConditionedDiffusion, vectors: Tensor, x_T: Tensor, sampler: Sampler, chunk: int) -> Tensor:
    """Images from condition ``vectors`` (B, K) and noise ``x_T`` (B, ...), ``chunk`` at a time (bounded
    memory), with a progress bar when there is more than one chunk (``effects`` on 32 dimensions x 128
    images is 4,224 regenerations, minutes on a CPU)."""
    chunks = list(zip(vectors.split(chunk), x_T.split(chunk)))
    progress = tqdm(chunks, desc="regenerating", unit="batch", disable=len(chunks) < 2, leave=False)
    return torch.cat([model.sample(condition=v, x_T=x, sampler=sampler) for v, x in progress])


@dataclass
class EditSettings:
    """How an edit of real images regenerates them: the one place its defaults live.

    ``protodiff explain edit`` (its ``Config`` extends this one, so ``--set guidance=2`` works) and
    ``protodiff explore`` (every slider move) both edit through :meth:`edit`, i.e.
    :meth:`ConditionedDiffusion.edit <protodiff.model.ConditionedDiffusion.edit>` with these values.
    """

    #: The sampler that inverts and regenerates (deterministic: DDIM with eta = 0).
    sampler: ComponentSpec = component("sampler", "ddim")
    #: Amplify the edit's difference: net(s') + (guidance - 1)(net(s') - net(s)); 1 is the edited
    #: condition alone (the default, EDIT_GUIDANCE, is measured: docs/steering.md).
    guidance: float = EDIT_GUIDANCE
    #: Start part-way: noise the image to this timestep and denoise it under the edit (SDEdit);
    #: None starts from the image's inversion, which keeps everything the edit does not change.
    start: int | None = None
    #: What the dimensions an edit does not set do: ``none`` holds them; ``regression`` moves them
    #: to their conditional mean given the edited ones over real images (:class:`Coupling`: the
    #: prototypes that fire with an edited one follow it), and guidance then amplifies the edited
    #: dimensions alone. A global attribute carried by several prototypes (a dark background) is
    #: added only so (docs/steering.md). ``mode`` moves the whole condition by the difference
    #: between the real images in the edited dimension's extreme mode and the rest (:class:`ModeShift
    #: <protodiff.explain.coupling.ModeShift>`; the edit's value says only which way).
    follow: Follow = "none"
    #: With ``follow: regression``, dimensions (names or indices) the followers are regressed on
    #: besides the edited ones, and held: the prototype of a concept that, in the data, comes with
    #: the edited one (a light background with a warm cast) keeps the followers from adding it too.
    given: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        at_least(0.0, guidance=self.guidance)
        if self.start is not None:
            at_least(0, start=self.start)
        check_follow(self.follow)
        if self.given and self.follow != "regression":
            raise ProtodiffError(
                f"given={list(self.given)} says what the followers of an edit are regressed on; it needs --set follow=regression"
            )

    def given_indices(self, names: Sequence[str]) -> tuple[int, ...]:
        """The given dimensions' indices among the condition's ``names`` (a one-line error for an unknown one)."""
        return tuple(dimension_index(name, names) for name in self.given)

    def coupling(self, reference: Tensor, names: Sequence[str]) -> Follower | None:
        """What these settings' edits move the other dimensions by (see :func:`coupling_for`)."""
        return coupling_for(self.follow, reference, self.given_indices(names))

    def condition(
        self, model: ConditionedDiffusion, x0: Tensor, vectors: Tensor, coupling: Follower | None
    ) -> tuple[Tensor, Tensor | None]:
        """The vectors ``x0`` is regenerated under for the edit ``vectors``, and the context guidance
        amplifies away from (None: ``x0``'s own condition). With ``follow: regression`` (or
        ``mode``) the dimensions an edit leaves alone move as ``coupling`` (fitted on real images'
        vectors) says."""
        if self.follow == "none":
            return vectors, None
        if coupling is None:
            raise ProtodiffError(
                f"follow={self.follow} moves the other dimensions as real images' vectors say; "
                "give the reference images it is fitted on (a data split), or --set follow=none"
            )
        return coupling.follow(model.encode(x0.to(model.device)).vector.detach(), vectors.to(model.device))

    def edit(
        self,
        model: ConditionedDiffusion,
        x0: Tensor,
        vectors: Tensor,
        *,
        sampler: Sampler | None = None,
        x_T: Tensor | None = None,
        coupling: Follower | None = None,
        generator: torch.Generator | None = None,
        callback: Callback | None = None,
    ) -> Tensor:
        """``x0`` regenerated under condition ``vectors`` with these settings (``x_T``: a cached
        inversion of ``x0`` under its own condition, made with the same sampler; ``sampler``: this
        config's, already built; ``coupling``: what ``follow: regression`` follows)."""
        vectors, context = self.condition(model, x0, vectors, coupling)
        return model.edit(
            x0,
            vectors,
            sampler=sampler or self.sampler.build(schedule=model.schedule),
            guidance=self.guidance,
            start=self.start,
            x_T=x_T,
            context=context,
            generator=generator,
            callback=callback,
        )

    def starting_noise(
        self,
        model: ConditionedDiffusion,
        x0: Tensor,
        vectors: Tensor,
        sampler: Sampler,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """What every edit of ``x0`` starts from, shared by all of them so that edits of one image
        differ only by their condition: its inversion under its own condition ``vectors`` (the
        caller's encoding of ``x0``), or (with ``start``) the noise that takes it to that step."""
        if self.start is None:
            return model.invert(x0, condition=vectors, sampler=sampler)
        return model.noise(len(x0), generator)

    def edit_many(
        self,
        model: ConditionedDiffusion,
        x0: Tensor,
        vectors: Tensor,
        x_T: Tensor,
        *,
        sampler: Sampler,
        chunk: int,
        coupling: Follower | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``x0`` (N images) edited to each of ``vectors`` (R * N rows, block r being the r-th edit of
        every image) from their ``starting_noise`` ``x_T``, ``chunk`` rows at a time, with a
        progress bar when there is more than one chunk (an effect matrix is minutes on a CPU)."""
        repeat = len(vectors) // len(x0)
        images, noise = x0.repeat(repeat, 1, 1, 1), x_T.repeat(repeat, 1, 1, 1)
        starts = range(0, len(vectors), chunk)
        progress = tqdm(starts, desc="editing", unit="batch", disable=len(starts) < 2, leave=False)
        return torch.cat(
            [
                self.edit(
                    model,
                    images[i : i + chunk],
                    vectors[i : i + chunk],
                    sampler=sampler,
                    x_T=noise[i : i + chunk],
                    coupling=coupling,
                    generator=generator,
                )
                for i in progress
            ]
        )


def invert_batch(model: ConditionedDiffusion, batch: Tensor, sampler: Sampler) -> tuple[Tensor, Tensor]:
    """The condition vectors of ``batch`` and the x_T each inverts to under its own condition."""
    condition = model.encode(batch)
    return condition.vector.detach(), model.invert(batch, condition=condition, sampler=sampler)


class EditExplainer(Explainer):
    """Set, shift or sweep named condition dimensions of real images; regenerate from their inverted x_T."""

    @dataclass
    class Config(EditSettings):
        to: list[str] = flag("Set a dimension: NAME=VALUE or NAME=max|min, e.g. --to proto_03=3.0 (repeatable).")
        shift: list[str] = flag("Shift a dimension: NAME=DELTA, e.g. --shift proto_03=+1.5 (repeatable).")
        sweep: list[str] = flag("An extrapolation strip: NAME=START:STOP:COUNT, e.g. --sweep proto_03=0:3:7.")
        #: Real images of the split whose observed range each value is checked against (and that
        #: ``--to NAME=max`` is the maximum over).
        reference: int = 256
        #: With ``given``: ``--to NAME=max`` (``min``) is the maximum over only this many reference
        #: images, those nearest each image in the given dimensions (as ``effects``' setting).
        neighbours: int | None = None
        #: Images regenerated per forward pass.
        batch_size: int = 64

        def __post_init__(self) -> None:
            super().__post_init__()
            at_least(1, reference=self.reference, batch_size=self.batch_size)
            check_neighbours(self.neighbours, self.given)

        def extreme(self, change: Change, vectors: Tensor, reference: Tensor, names: Sequence[str]) -> Tensor | None:
            """What ``change`` sets its dimension to on each of ``vectors`` when it is ``max`` or
            ``min``: the extreme over the ``reference`` vectors, or over the ``neighbours`` of them
            nearest each image in the given dimensions. None for a number."""
            if change.extreme is None:
                return None
            quantile = 1.0 if change.extreme == "max" else 0.0
            if self.neighbours is not None:
                given = self.given_indices(names)
                return local_quantile(reference, vectors, change.index, given, self.neighbours, quantile)
            return torch.quantile(reference[:, change.index].float(), quantile).expand(len(vectors))

    def explain(
        self,
        model: ConditionedDiffusion,
        batch: Tensor,
        *,
        data: LabeledImages | None = None,
        generator: torch.Generator | None = None,
    ) -> Explanation:
        c = self.config
        require_vector(model, "edit")
        names = model.conditioner.names
        changes = parse_changes(c.to, c.shift, names)
        sweeps = [parse_sweep(item, names) for item in c.sweep]
        if not changes and not sweeps:
            raise ProtodiffError(
                "edit: nothing to change; pass --to NAME=VALUE, --shift NAME=DELTA or --sweep NAME=START:STOP:COUNT"
            )
        sampler = c.sampler.build(schedule=model.schedule)
        vectors, x_T = invert_batch(model, batch, sampler)
        reference = encode_split(model, data, limit=c.reference).vectors if data is not None else vectors.cpu()
        low, high = observed_range(reference)
        coupling = c.coupling(reference, names)
        edited_vectors = vectors
        for change in changes:
            edited_vectors = change.apply(edited_vectors, c.extreme(change, vectors, reference.to(vectors.device), names))
            warn_outside(change.index, edited_vectors[:, change.index].tolist(), low, high, names)
        for sweep in sweeps:
            warn_outside(sweep.index, sweep.values, low, high, names)
        n = len(batch)
        origin = x_T if c.start is None else c.starting_noise(model, batch, vectors, sampler, generator)
        reconstructed = regenerate(model, vectors, x_T, sampler, c.batch_size)
        tensors = {"images": batch, "x_T": x_T, "vectors": vectors, "reconstructed": reconstructed}
        touched = sorted({change.index for change in changes})
        meta = {
            "names": names,
            "changes": [{"dimension": names[ch.index], "value": ch.value, "shift": ch.shift} for ch in changes],
            "before": {names[i]: vectors[:, i].tolist() for i in touched},
            "after": {names[i]: edited_vectors[:, i].tolist() for i in touched},
            "observed_range": {names[i]: [float(low[i]), float(high[i])] for i in {*touched, *(s.index for s in sweeps)}},
            "reference_images": len(reference),
            "sweeps": [],
            "guidance": c.guidance,
            "start": c.start,
            "follow": c.follow,
            "given": list(c.given),
            "neighbours": c.neighbours,
        }
        figures = {}
        if changes:
            edited = c.edit_many(
                model, batch, edited_vectors, origin, sampler=sampler, chunk=c.batch_size, coupling=coupling, generator=generator
            )
            tensors["edited"], tensors["edited_vectors"] = edited, c.condition(model, batch, edited_vectors, coupling)[0]
            label = ", ".join(change.label(names) for change in changes)
            columns = [("real", batch), ("reconstructed", reconstructed), ("edited", edited)]
            figures["edit.png"] = lambda path, cols=columns, t=label: save_image_grid(path, cols, per_row=1, title=f"edit: {t}")
        for sweep in sweeps:
            name = names[sweep.index]
            swept = vectors.repeat(len(sweep.values), 1)
            swept[:, sweep.index] = torch.tensor(sweep.values, device=swept.device).repeat_interleave(n)
            strips = c.edit_many(
                model, batch, swept, origin, sampler=sampler, chunk=c.batch_size, coupling=coupling, generator=generator
            )
            strips = strips.reshape(len(sweep.values), n, *batch.shape[1:])
            tensors[f"sweep.{name}"] = strips.transpose(0, 1)  # (N, values, C, H, W)
            meta["sweeps"].append({"dimension": name, "values": list(sweep.values), "before": vectors[:, sweep.index].tolist()})
            columns = [("real", batch)] + [(f"{v:.3g}", strips[k]) for k, v in enumerate(sweep.values)]
            figures[f"sweep_{name}.png"] = lambda path, cols=columns, t=name: save_image_grid(
                path, cols, per_row=1, title=f"sweep of {t} (real image, then regenerated at each value)"
            )
        return Explanation("edit", tensors, meta, figures)


def slerp(a: Tensor, b: Tensor, weight: float) -> Tensor:
    """Spherical interpolation between noise tensors (per item): keeps the norm a Gaussian x_T has,
    which a straight line would shrink in the middle."""
    flat_a, flat_b = a.flatten(1), b.flatten(1)
    cosine = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1)).clamp_min(1e-12)
    theta = torch.arccos(cosine.clamp(-1, 1))[:, None]
    sin = torch.sin(theta)
    near = sin.abs() < 1e-6
    wa = torch.where(near, torch.full_like(theta, 1 - weight), torch.sin((1 - weight) * theta) / sin)
    wb = torch.where(near, torch.full_like(theta, weight), torch.sin(weight * theta) / sin)
    return (wa * flat_a + wb * flat_b).reshape(a.shape)


class InterpolateExplainer(Explainer):
    """Interpolate between pairs of real images (images 1-2, 3-4, ...): lerp of the condition, slerp of x_T."""

    @dataclass
    class Config:
        #: Points along each path, both ends included.
        steps: int = 7
        sampler: ComponentSpec = component("sampler", "ddim")
        batch_size: int = 64

        def __post_init__(self) -> None:
            if self.steps < 2:
                raise ValueError("steps must be at least 2 (the two ends)")
            at_least(1, batch_size=self.batch_size)

    def explain(self, model: ConditionedDiffusion, batch: Tensor) -> Explanation:
        c = self.config
        require_vector(model, "interpolate")
        if len(batch) < 2:
            raise ProtodiffError("interpolate needs at least two images (--n 2): it pairs images 1-2, 3-4, ...")
        pairs = len(batch) // 2
        sampler = c.sampler.build(schedule=model.schedule)
        vectors, x_T = invert_batch(model, batch[: 2 * pairs], sampler)
        weights = torch.linspace(0, 1, c.steps).tolist()
        first, second = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        path_vectors = torch.cat([torch.lerp(vectors[first], vectors[second], w) for w in weights])
        path_noise = torch.cat([slerp(x_T[first], x_T[second], w) for w in weights])
        frames = regenerate(model, path_vectors, path_noise, sampler, c.batch_size)
        frames = frames.reshape(c.steps, pairs, *batch.shape[1:])
        columns = [("from", batch[first])] + [(f"{w:.2f}", frames[k]) for k, w in enumerate(weights)] + [("to", batch[second])]

        def render(path: Path) -> None:
            save_image_grid(path, columns, per_row=1, title="interpolation: lerp of the condition, slerp of x_T")

        meta = {
            "names": model.conditioner.names,
            "weights": weights,
            "pairs": [[2 * i, 2 * i + 1] for i in range(pairs)],
            "vectors": path_vectors.reshape(c.steps, pairs, -1).transpose(0, 1).tolist(),
        }
        return Explanation("interpolate", {"frames": frames.transpose(0, 1), "images": batch}, meta, {"interpolate.png": render})


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.explainer.add("edit", EditExplainer)
    registry.explainer.add("interpolate", InterpolateExplainer)
