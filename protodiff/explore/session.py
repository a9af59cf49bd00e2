"""A run held open for live editing: the library ``protodiff explore`` shows, usable from Python.

::

    from protodiff.explore.session import Explorer

    explorer = Explorer.open("runs/ps")
    picture = explorer.pick(3)                        # test image 3, encoded and inverted once (cached)
    result = explorer.edit(picture.key, {"proto_03": 2.5})   # or a whole vector
    result.image, result.after, result.timeline.x0_hat, result.timeline.activations, result.seconds

It holds no analysis of its own. A picture is encoded with ``model.encode`` and its starting
noise made once (:meth:`EditSettings.starting_noise
<protodiff.explain.edit.EditSettings.starting_noise>`: its inversion under its own condition, or
with a partial start the noise to that step); an edit is
:meth:`EditSettings.edit <protodiff.explain.edit.EditSettings.edit>` (the settings ``protodiff
explain edit`` uses, so a slider does what that command does) from that cached noise, its
sampler callback collecting x0_hat at every step and re-encoding it (the "when", as ``explain
emergence`` reads it); the prototype gallery is ``protodiff.explain(RUN, "prototypes")``; effect
matrices and shortcut rankings are the files ``protodiff explain effects`` / ``shortcuts`` saved,
read back through their schema; names are the checkpoint's (``protodiff names``), with the
proposals of :mod:`protodiff.explain.naming` from a saved effect matrix beside them.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from protodiff.checkpoint import load_model, resolve_checkpoint
from protodiff.contracts.sampler import StepInfo
from protodiff.devices import resolve_device
from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError
from protodiff.explain.coupling import follow_or_hold
from protodiff.explain.dimensions import dimension_index, observed_range
from protodiff.explain.edit import EditSettings, require_vector
from protodiff.explain.effects import EffectsExplainer, enhanced_values, strongest_rows
from protodiff.explain.naming import evidence, proposals
from protodiff.explore.uploads import decode_image
from protodiff.schema import OptionalKey, SchemaError, read_json

if TYPE_CHECKING:
    from protodiff.contracts.explainer import Explanation
    from protodiff.experiment import ExperimentConfig
    from protodiff.model import ConditionedDiffusion

#: Real images of the test split whose conditions give each slider its range and each effect its
#: enhanced value: as many as ``explain effects`` takes its plausible maxima over.
REFERENCE_IMAGES = EffectsExplainer.Config.reference
#: A name is proposed from a saved effect matrix where raising the dimension moves an attribute's
#: probability at least this much (``protodiff names --suggest``'s ``--min-effect``).
MIN_EFFECT = 0.2
#: Pictures whose inversion is kept (the oldest is dropped first).
CACHE_SIZE = 32

#: What the explorer reads of an ``effects`` or ``shortcuts`` explanation's ``meta.json``.
EFFECTS_SCHEMA = {
    "explainer": str,
    "dimensions": [str],
    "attributes": [str],
    "effect": [[OptionalKey(float)]],
    "consistency": OptionalKey([[OptionalKey(float)]]),
    "success": OptionalKey([[OptionalKey(float)]]),
    "leakage": OptionalKey([[OptionalKey(float)]]),
    "suggestions": OptionalKey([{"index": int, "attribute": str, "effect": float, "consistency": float}]),
    "quantile": OptionalKey(float),
    "images": OptionalKey(int),
}
#: What it reads of a ``shortcuts`` explanation's ``shortcuts.json``.
SHORTCUTS_SCHEMA = {
    "threshold": float,
    "couplings": [
        {
            "prototype": str,
            "attributes": [str],
            "effects": [float],
            "score": OptionalKey(float),
            "train_correlation": OptionalKey(float),
            "flagged": bool,
        }
    ],
}


@dataclass(frozen=True)
class Picture:
    """One image held open: its condition, and what every edit of it starts from."""

    #: ``test:INDEX`` or ``upload:HASH``: what the page asks for it by.
    key: str
    label: str
    #: (C, H, W) in [-1, 1], on the CPU.
    image: Tensor
    #: (K,) its own condition, and (K, h, w) its distance maps where the conditioner has them.
    vector: Tensor
    maps: Tensor | None
    #: What every edit of it starts from (``EditSettings.starting_noise``): its inversion under its
    #: own condition, or with a partial start the noise that takes it to that step.
    x_T: Tensor
    #: The unedited regeneration's timeline: what each edit's curves are drawn against.
    baseline: Timeline
    #: Its attribute labels (name -> 0/1) where it comes from a labelled split.
    attributes: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeline:
    """The sampler's walk of one edit: x0_hat and its re-encoded condition after every step."""

    #: The timestep of each step's x_t (descending).
    timesteps: list[int]
    #: (S, C, H, W) x0_hat after each step, on the CPU.
    x0_hat: Tensor
    #: (S, K) the condition of each x0_hat, read by the model's own encoder.
    activations: Tensor


@dataclass(frozen=True)
class EditResult:
    """A picture regenerated under an edited condition."""

    picture: Picture
    #: (K,) the condition the edit asked for (the sliders' values).
    vector: Tensor
    #: (K,) the condition it was regenerated under: ``vector`` with, under ``follow: regression``,
    #: the dimensions it did not change moved with those it did (equal to ``vector`` otherwise).
    followed: Tensor
    #: (C, H, W) the regeneration, and its condition read back by the encoder (``after``, ``maps``).
    image: Tensor
    after: Tensor
    maps: Tensor | None
    timeline: Timeline
    #: Wall-clock seconds of the edit (regeneration and re-encoding; the inversion was cached).
    seconds: float


@dataclass(frozen=True)
class SavedEffects:
    """An effect matrix (and, from ``shortcuts``, its ranking) saved with ``--out`` by ``protodiff
    explain effects`` or ``shortcuts``, read back; each cell names the edit that shows it: the
    dimension set to its plausible maximum (the ``quantile`` of its values over real images)."""

    path: Path
    explainer: str
    dimensions: list[str]
    attributes: list[str]
    effect: list[list[float | None]]
    success: list[list[float | None]] | None
    leakage: list[list[float | None]] | None
    quantile: float
    images: int | None
    suggestions: list[dict[str, Any]] | None
    #: The shortcut ranking (``shortcuts.json``'s couplings), flagged first; None for ``effects``.
    couplings: list[dict[str, Any]] | None


def run_directory(run: str | os.PathLike[str]) -> Path:
    """The run directory of ``run`` (a run directory, or one of its checkpoints)."""
    path = Path(run)
    checkpoint = resolve_checkpoint(path)
    return checkpoint.parent.parent if checkpoint == path else path


def explanation_dirs(run_dir: Path, extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Where a run's saved explanations are looked for: ``RUN/explain/*`` (``protodiff explain NAME
    RUN --out RUN/explain/NAME``), a bench cell's ``explain/*`` beside its ``run/``, and ``extra``."""
    found = [Path(p) for p in extra]
    for folder in (run_dir / "explain", run_dir.parent / "explain"):
        if folder.is_dir():
            found.extend(sorted(p for p in folder.iterdir() if (p / "meta.json").is_file()))
    return list(dict.fromkeys(found))


def read_effects(directory: Path, dimensions: int) -> SavedEffects | None:
    """The effect matrix saved in ``directory``, None when it holds another explainer's output; a
    damaged file, or one for another model, is a one-line :class:`~protodiff.errors.ProtodiffError`."""
    path = directory / "meta.json"
    fix = f"run `protodiff explain effects RUN --classifier DIR --out {directory}` again"
    meta = read_json(path, {"explainer": OptionalKey(str)}, fix=fix)
    if meta.get("explainer") not in ("effects", "shortcuts"):
        return None
    meta = read_json(path, EFFECTS_SCHEMA, fix=fix)
    if len(meta["dimensions"]) != dimensions or len(meta["effect"]) != dimensions:
        raise SchemaError(
            f"{path}: covers {len(meta['dimensions'])} dimensions, this run has {dimensions}; it explains another model"
        )
    couplings = None
    if meta["explainer"] == "shortcuts" and (directory / "shortcuts.json").is_file():
        couplings = read_json(directory / "shortcuts.json", SHORTCUTS_SCHEMA, fix=fix)["couplings"]
    return SavedEffects(
        path=directory,
        explainer=meta["explainer"],
        dimensions=meta["dimensions"],
        attributes=meta["attributes"],
        effect=meta["effect"],
        success=meta.get("success"),
        leakage=meta.get("leakage"),
        quantile=float(meta.get("quantile") or EffectsExplainer.Config.quantile),
        images=meta.get("images"),
        suggestions=meta.get("suggestions"),
        couplings=couplings,
    )


class Explorer:
    """A model held open for live editing of real or uploaded images (see the module).

    Calls that run the model are serialised by a lock, so a server may call from several threads.
    """

    def __init__(
        self,
        model: ConditionedDiffusion,
        experiment: ExperimentConfig,
        *,
        run: str | os.PathLike[str] | None = None,
        settings: EditSettings | None = None,
        explanations: Sequence[str | os.PathLike[str]] = (),
        reference: int = REFERENCE_IMAGES,
        seed: int = 0,
    ) -> None:
        require_vector(model, "explore")
        self.model = model.eval()
        self.experiment = experiment
        #: The checkpoint directory the model came from (None: a model in memory).
        self.checkpoint = resolve_checkpoint(run) if run is not None else None
        self.run = Path(run) if run is not None else None
        self.settings = settings or EditSettings()
        self.sampler = self.settings.sampler.build(schedule=model.schedule)
        self.seed = seed
        self._lock = threading.Lock()  # the model: one call at a time
        self._cache_lock = threading.Lock()
        self._pictures: OrderedDict[str, Picture] = OrderedDict()
        self.data = experiment.data.build().open("test")
        self.attribute_names = list(self.data.attribute_names)
        self.labels = self.data.attributes() if self.attribute_names else torch.zeros(len(self.data), 0)
        self.reference = encode_split(model, self.data, limit=reference).vectors
        self.low, self.high = observed_range(self.reference)
        #: What ``follow: regression`` moves the unedited dimensions by (None when edits hold them).
        self.coupling = self.settings.coupling(self.reference, model.conditioner.names)
        #: Saved effect matrices and shortcut rankings of this run, and one line per one that would not read.
        self.effects: list[SavedEffects] = []
        self.notes: list[str] = []
        run_dir = run_directory(run) if run is not None else None
        for directory in explanation_dirs(run_dir, explanations) if run_dir is not None else [Path(p) for p in explanations]:
            try:
                saved = read_effects(directory, model.conditioner.dim)
            except ProtodiffError as exc:
                self.notes.append(str(exc))
                continue
            if saved is not None:
                self.effects.append(saved)

    @classmethod
    def open(
        cls,
        run: str | os.PathLike[str],
        *,
        device: str | torch.device = "cpu",
        settings: EditSettings | None = None,
        explanations: Sequence[str | os.PathLike[str]] = (),
        reference: int = REFERENCE_IMAGES,
    ) -> Explorer:
        """Load ``run`` (a run directory or a checkpoint; EMA weights when present)."""
        model, experiment = load_model(run, device=resolve_device(str(device)))
        return cls(model, experiment, run=run, settings=settings, explanations=explanations, reference=reference)

    # -- what the run is ------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return self.model.conditioner.names

    def suggested(self) -> dict[int, str]:
        """Names proposed by the first saved effect matrix that has suggestions (as ``protodiff
        names --suggest`` proposes them), for the dimensions a person has not named."""
        saved = next((s for s in self.effects if s.suggestions), None)
        if saved is None:
            return {}
        default = self.model.conditioner.default_names()
        named = {j for j, (a, b) in enumerate(zip(self.names, default)) if a != b}
        proposed = proposals(len(self.names), saved.suggestions, None, min_effect=MIN_EFFECT, min_auroc=1.0)
        return {j: name for j, name in proposed.items() if j not in named}

    def evidence(self, j: int) -> str:
        """What the saved effect matrix says raising dimension ``j`` does (one line)."""
        saved = next((s for s in self.effects if s.suggestions), None)
        return evidence(j, saved.suggestions if saved else None, None)

    def slider_range(self) -> tuple[Tensor, Tensor]:
        """Per dimension, the range a slider spans: the range observed on real images, widened by
        its own width on each side (beyond that, ``explain edit`` warns of extrapolation)."""
        width = (self.high - self.low).clamp_min(1e-3)
        return self.low - width, self.high + width

    def enhanced(self, dimension: int, quantile: float) -> float:
        """The plausible maximum of ``dimension`` over the reference images (``explain effects``'
        enhanced value): what a cell of a saved effect matrix sets its slider to."""
        return float(enhanced_values(self.reference[:, dimension : dimension + 1], quantile)[0])

    def matching(self, attribute: str | None = None, present: bool = True, limit: int = 24) -> list[int]:
        """Indices of the first ``limit`` test images with (or without) ``attribute`` (any, if None)."""
        if attribute is None or attribute == "":
            return list(range(min(limit, len(self.data))))
        if attribute not in self.attribute_names:
            raise ProtodiffError(f"no attribute {attribute!r}; this dataset has {', '.join(self.attribute_names) or 'none'}")
        column = self.labels[:, self.attribute_names.index(attribute)] > 0.5
        return (column if present else ~column).nonzero().flatten()[:limit].tolist()

    def strongest_dimensions(self, saved: SavedEffects, limit: int = 32) -> list[int]:
        """The rows of ``saved`` worth showing (all, up to ``limit``; else the strongest, as the
        effects heat map draws them)."""
        return strongest_rows(torch.tensor([[v or 0.0 for v in row] for row in saved.effect]), limit)

    # -- pictures -------------------------------------------------------------------------------
    def test_image(self, index: int) -> Tensor:
        if not 0 <= index < len(self.data):
            raise ProtodiffError(f"no test image {index}; the test split has {len(self.data)} (0..{len(self.data) - 1})")
        return self.data[index][0]

    def pick(self, index: int) -> Picture:
        """Test image ``index``, encoded and inverted (cached)."""
        key = f"test:{index}"
        cached = self._cached(key)
        if cached is not None:
            return cached
        image = self.test_image(index)
        labels = {a: float(v) for a, v in zip(self.attribute_names, self.labels[index].tolist())}
        return self._add(key, f"test image {index}", image, labels)

    def upload(self, data: bytes, filename: str = "") -> Picture:
        """An uploaded PNG or JPEG (checked and decoded in memory, resized to the run's size), encoded and inverted."""
        key = "upload:" + hashlib.sha256(data).hexdigest()[:16]
        cached = self._cached(key)
        if cached is not None:
            return cached
        image = decode_image(data, size=self.model.image_size, channels=self.model.in_channels)
        label = f"upload {Path(filename).name[:60]}" if filename else "upload"
        return self._add(key, label, image, {})

    def picture(self, key: str) -> Picture:
        """A picture held open (picked or uploaded, and not yet dropped from the cache)."""
        picture = self._cached(key)
        if picture is None:
            raise ProtodiffError(f"image {key[:40]!r} is not held (never picked, or dropped from the cache); pick it again")
        return picture

    def _cached(self, key: str) -> Picture | None:
        with self._cache_lock:
            picture = self._pictures.get(key)
            if picture is not None:
                self._pictures.move_to_end(key)
            return picture

    def _add(self, key: str, label: str, image: Tensor, attributes: dict[str, float]) -> Picture:
        with self._lock, torch.inference_mode():
            x0 = image[None].to(self.model.device)
            condition = self.model.encode(x0)
            generator = torch.Generator().manual_seed(self.seed)
            x_T = self.settings.starting_noise(self.model, x0, condition.vector, self.sampler, generator)
            baseline, _ = self._walk(x0, condition.vector, x_T)
        picture = Picture(
            key=key,
            label=label,
            image=image.cpu(),
            vector=condition.vector[0].float().cpu(),
            maps=condition.maps[0].float().cpu() if condition.maps is not None else None,
            x_T=x_T,
            baseline=baseline,
            attributes=attributes,
        )
        with self._cache_lock:
            self._pictures[key] = picture
            while len(self._pictures) > CACHE_SIZE:
                self._pictures.popitem(last=False)
        return picture

    # -- edits ----------------------------------------------------------------------------------
    def _walk(self, x0: Tensor, vector: Tensor, x_T: Tensor) -> tuple[Timeline, Tensor]:
        """One edit of ``x0`` (batch of one) under ``vector``, collecting the timeline."""
        timesteps: list[int] = []
        frames: list[Tensor] = []
        activations: list[Tensor] = []

        def read(info: StepInfo) -> None:
            timesteps.append(info.t)
            frames.append(info.x0_hat[0].float().cpu())
            activations.append(self.model.encode(info.x0_hat).vector[0].float().cpu())

        image = self.settings.edit(self.model, x0, vector, sampler=self.sampler, x_T=x_T, coupling=self.coupling, callback=read)
        return Timeline(timesteps, torch.stack(frames), torch.stack(activations)), image

    def vector_for(self, picture: Picture, values: Sequence[float] | Tensor | Mapping[str, float]) -> Tensor:
        """The condition an edit asks for: a whole vector (K values), or ``{name: value}`` changes to the picture's own."""
        k = self.model.conditioner.dim
        if isinstance(values, Mapping):
            vector = picture.vector.clone()
            for name, value in values.items():
                vector[dimension_index(str(name), self.names)] = float(value)
        else:
            vector = torch.as_tensor(values, dtype=torch.float32).flatten()
            if vector.shape != (k,):
                raise ProtodiffError(f"an edit gives {vector.numel()} values; this run's condition has {k}")
        if not torch.isfinite(vector).all():
            raise ProtodiffError("an edit's values must be finite numbers")
        return vector

    def edit(self, key: str, values: Sequence[float] | Tensor | Mapping[str, float]) -> EditResult:
        """Regenerate picture ``key`` under an edited condition (see :meth:`vector_for`), from its
        cached inversion, with the timeline of the walk."""
        picture = self.picture(key)
        vector = self.vector_for(picture, values)
        with self._lock, torch.inference_mode():
            started = time.perf_counter()
            x0 = picture.image[None].to(self.model.device)
            asked = vector[None].to(self.model.device)
            timeline, image = self._walk(x0, asked, picture.x_T.to(self.model.device))
            condition = self.model.encode(image)
            seconds = time.perf_counter() - started
        return EditResult(
            picture=picture,
            vector=vector,
            followed=follow_or_hold(self.coupling, picture.vector[None], vector[None])[0][0],
            image=image[0].float().cpu(),
            after=condition.vector[0].float().cpu(),
            maps=condition.maps[0].float().cpu() if condition.maps is not None else None,
            timeline=timeline,
            seconds=seconds,
        )

    # -- explanations ---------------------------------------------------------------------------
    def gallery(self, images: int = 4) -> Explanation:
        """The ``prototypes`` explanation of this run on its first ``images`` test images (each
        prototype's nearest training patch, and its patch where it is turned up and regenerated).
        From a run this loads its own copy of the model, so live edits never wait on it; a model
        that has no prototypes is refused with the explainer's one-line error."""
        from protodiff.explain.context import explain

        if self.checkpoint is not None:
            return explain(self.checkpoint, "prototypes", images=images, device=self.model.device)
        with self._lock:
            return explain(self.model, "prototypes", images=images, experiment=self.experiment)
