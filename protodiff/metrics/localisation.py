"""``localisation``: does a map put an attribute where the image has it?

Any per-image map (a registered ``saliency`` source, :mod:`protodiff.contracts.saliency`) is
scored against a dataset's ground-truth regions (``LabeledImages.regions``: ``shapes``' mark boxes,
``folder``'s mask files), per attribute, over the images that have that attribute:

``pointing``
    The pointing game (Zhang et al., "Top-down neural attention by excitation backprop", ECCV
    2016): is the map's maximum inside the region? With ties, the share of the tied maxima inside
    it (what breaking them at random would score on average), so a constant map scores the region's
    area, not 1.
``mass_inside`` and ``area``, and their ratio ``mass_over_area``
    The share of the map's mass (above the map's own minimum: a map with a floor is not credited
    for the floor) inside the region, against the share of the image the region covers. A map that
    knows nothing scores a ratio of 1 (a constant map counts as spread evenly); the largest possible
    ratio is 1 / area.
``auroc``
    The AUROC of the map's pixel values as a score for "inside the region" (Mann-Whitney, ties
    counted half): 1 when every inside pixel outranks every outside one, 0.5 for a map that does not
    rank them. Invariant to any increasing transform of the map, unlike the mass.

Each number is a mean over images with its standard deviation and count. A targeted source
(Patronus' prototype maps, the targeted DF-CAM and DF-RISE) explains one attribute at a time
through the condition dimension that detects it best, chosen by AUROC against the labels on the
*train* split, so the scored images never choose it.

``localisation-<source>`` (a family: ``localisation-prototypes``, ``localisation-df-cam``, ...) is
the same metric with ``map`` defaulting to that source and labelled ``localisation (<source>)``,
so that one evaluation or one bench scores several sources side by side.

Two controls look at no model: ``random`` (smooth seeded noise, the chance level of every number)
and ``centre`` (a Gaussian bump at the centre: the prior a map gets for free when the data put
things near the middle).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.manager import registries
from protodiff._registry.registry import Registries
from protodiff.config import ComponentSpec, component, optional_component, to_dict
from protodiff.contracts.metric import EvalContext, Metric
from protodiff.contracts.saliency import Saliency, Target
from protodiff.errors import OptionError, UnsupportedData, UnsupportedModel
from protodiff.validation import at_least, positive

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages
    from protodiff.model import ConditionedDiffusion


# -- the scores ---------------------------------------------------------------------------------
def pointing(maps: Tensor, inside: Tensor) -> Tensor:
    """(N,) share of each map's maximal pixels that lie inside its region (1 or 0 without ties)."""
    flat, where = maps.flatten(1).float(), inside.flatten(1).float()
    top = flat == flat.max(dim=1, keepdim=True).values
    return (top.float() * where).sum(1) / top.float().sum(1)


def mass_inside(maps: Tensor, inside: Tensor) -> Tensor:
    """(N,) share of each map's mass above its minimum that lies inside its region (a constant map:
    the region's area)."""
    flat, where = maps.flatten(1).double(), inside.flatten(1).double()
    above = flat - flat.min(dim=1, keepdim=True).values
    total = above.sum(1)
    share = (above * where).sum(1) / total.clamp_min(1e-300)
    return torch.where(total > 0, share, where.mean(1)).float()


def pixel_auroc(maps: Tensor, inside: Tensor) -> Tensor:
    """(N,) AUROC of each map's pixel values for inside-vs-outside its region (ties half; NaN when
    the region is empty or the whole image)."""
    from scipy.stats import rankdata

    flat = maps.flatten(1).double().cpu().numpy()
    where = inside.flatten(1).cpu().numpy().astype(bool)
    ranks = rankdata(flat, axis=1)
    positives = where.sum(1)
    negatives = where.shape[1] - positives
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = ((ranks * where).sum(1) - positives * (positives + 1) / 2) / (positives * negatives)
    return torch.from_numpy(np.where((positives > 0) & (negatives > 0), auroc, np.nan)).float()


# -- the controls -------------------------------------------------------------------------------
class RandomMap(Saliency):
    """Smooth seeded noise: a Gaussian grid of ``cell``-pixel cells, upsampled bilinearly (the
    chance level of every score, at the smoothness of a saliency map)."""

    @dataclass
    class Config:
        #: Pixels per cell of the random grid (larger: smoother blobs).
        cell: int = 4

        def __post_init__(self) -> None:
            at_least(1, cell=self.cell)

    def describe(self) -> dict[str, Any]:
        return {"map": f"N(0, 1) on a grid of {self.config.cell} px cells, upsampled bilinearly"}

    def maps(self, model: ConditionedDiffusion, x0: Tensor, *, target: Target | None, generator: torch.Generator) -> Tensor:
        batch, _, height, width = x0.shape
        cell = self.config.cell
        grid = torch.randn(batch, 1, -(-height // cell) + 1, -(-width // cell) + 1, generator=generator)
        return F.interpolate(grid, size=(height, width), mode="bilinear", align_corners=False)[:, 0].to(x0.device)


class CentreMap(Saliency):
    """A Gaussian bump at the image's centre, the same for every image."""

    @dataclass
    class Config:
        #: Its standard deviation, as a share of the image's side.
        sigma: float = 0.25

        def __post_init__(self) -> None:
            positive(sigma=self.sigma)

    def describe(self) -> dict[str, Any]:
        return {"map": f"exp(-r^2 / 2 sigma^2) about the image centre, sigma = {self.config.sigma} x the side"}

    def maps(self, model: ConditionedDiffusion, x0: Tensor, *, target: Target | None, generator: torch.Generator) -> Tensor:
        batch, _, height, width = x0.shape
        yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        r2 = ((yy - (height - 1) / 2) / height) ** 2 + ((xx - (width - 1) / 2) / width) ** 2
        bump = torch.exp(-r2 / (2 * self.config.sigma**2))
        return bump.expand(batch, -1, -1).to(x0.device).clone()


# -- the metric ---------------------------------------------------------------------------------
def best_dimensions(
    model: ConditionedDiffusion, train: LabeledImages, names: list[str], count: int, *, batch_size: int = 128
) -> dict[str, Target]:
    """Each attribute of ``names`` -> the condition dimension with the highest AUROC against its
    labels over the first ``count`` images of ``train`` (the dimension *higher* when the attribute
    is present: one that detects its absence has no place to point at)."""
    from sklearn.metrics import roc_auc_score

    from protodiff.encoding import encode_split

    encoded = encode_split(model, train, limit=count, batch_size=batch_size)
    vectors, labels = encoded.vectors.double().numpy(), encoded.attributes.numpy()
    out = {}
    for name in names:
        if name not in train.attribute_names:
            raise UnsupportedData(
                f"attribute {name!r} has regions but no labels in the train split: a targeted map needs "
                "labels to choose the dimension that detects it"
            )
        y = labels[:, train.attribute_names.index(name)]
        if np.unique(y).size < 2:
            raise UnsupportedData(
                f"attribute {name!r} is {'always' if y.all() else 'never'} present in the first {len(y)} train images"
            )
        scores = [roc_auc_score(y, vectors[:, j]) for j in range(vectors.shape[1])]
        j = int(np.argmax(scores))
        out[name] = Target(name, j, encoded.names[j], round(float(scores[j]), 4))
    return out


class Localisation(Metric):
    """Pointing game, mass inside against area, and pixel AUROC of a named map source, per attribute."""

    @dataclass
    class Config:
        #: The map source: a registered saliency (``prototypes``, ``df-cam``, ``df-rise``, ``random``,
        #: ``centre``, ...; ``protodiff plugins`` lists them), with its options (``map.t=50``).
        map: ComponentSpec | None = optional_component("saliency")
        #: Score the first this many images of the split that have a region.
        num_images: int = 256
        batch_size: int = 16
        #: Train images on which a targeted source's dimension per attribute is chosen.
        selection_images: int = 1000

        def __post_init__(self) -> None:
            at_least(1, num_images=self.num_images, batch_size=self.batch_size, selection_images=self.selection_images)

    def source(self) -> Saliency:
        if self.config.map is None:
            names = ", ".join(registries().saliency.names())
            raise OptionError(f"localisation.map: name a map source, e.g. --set localisation.map=centre (registered: {names})")
        built: Saliency = self.config.map.build()
        return built

    def check(self, model: ConditionedDiffusion, data: LabeledImages) -> None:
        source = self.source()
        if not data.region_names():
            raise UnsupportedData(
                f"the dataset ({type(data).__name__}) knows no regions: localisation needs shapes' marks or a "
                "folder with masks/<attribute>/<image stem>.png beside its images"
            )
        if source.targeted and not model.is_conditional:
            raise UnsupportedModel(
                f"localisation.map={self.config.map.name if self.config.map else ''} is targeted through the "
                "condition dimension that detects each attribute; this model has no condition"
            )
        source.check(model)

    def compute(self, model: ConditionedDiffusion, data: LabeledImages, context: EvalContext) -> dict[str, Any]:
        source = self.source()
        names = data.region_names()
        picked = [i for i in range(len(data)) if data.regions(i)][: self.config.num_images]
        if not picked:
            raise UnsupportedData(f"none of the {len(data)} images of the {context.split} split has a region")
        targets: dict[str, Target] = {}
        if source.targeted:
            train = context.source.open("train")
            key = ("best-dimensions", id(model), tuple(names), self.config.selection_images)
            targets = context.cache.get(key, lambda: best_dimensions(model, train, names, self.config.selection_images))
        generator = torch.Generator().manual_seed(context.seed)
        scores: dict[str, dict[str, list[Tensor]]] = {n: {"pointing": [], "mass": [], "area": [], "auroc": []} for n in names}
        size = self.config.batch_size
        for start in tqdm(range(0, len(picked), size), desc="localising", disable=not context.progress, leave=False):
            indices = picked[start : start + size]
            x0 = torch.stack([data[i][0] for i in indices]).to(model.device)
            regions = [data.regions(i) for i in indices]
            shared = None if source.targeted else source.maps(model, x0, target=None, generator=generator).float().cpu()
            for name in names:
                rows = [r for r, found in enumerate(regions) if name in found]
                if not rows:
                    continue
                inside = torch.stack([regions[r][name] for r in rows])
                if shared is None:
                    maps = source.maps(model, x0[rows], target=targets[name], generator=generator).float().cpu()
                else:
                    maps = shared[rows]
                if maps.shape != inside.shape:
                    raise UnsupportedModel(
                        f"saliency {self.config.map.name if self.config.map else ''} gave maps {tuple(maps.shape)} for "
                        f"regions {tuple(inside.shape)}: a source must return (B, H, W) at the images' size"
                    )
                found = scores[name]
                found["pointing"].append(pointing(maps, inside))
                found["mass"].append(mass_inside(maps, inside))
                found["area"].append(inside.flatten(1).float().mean(1))
                found["auroc"].append(pixel_auroc(maps, inside))
        per_attribute = {name: _summary(found, targets.get(name)) for name, found in scores.items()}
        scored = [v for v in per_attribute.values() if v is not None]
        spec = self.config.map
        return {
            "label": f"localisation ({spec.name})" if spec else "localisation",
            "map": spec.name if spec else None,
            "map_options": to_dict(spec.resolved()) if spec else None,
            "targeted": source.targeted,
            "value": round(float(np.mean([v["pointing"] for v in scored])), 4) if scored else None,
            "per_attribute": per_attribute,
            "no_region": [n for n in data.attribute_names if n not in names],
            "num_images": len(picked),
            "protocol": {
                "images": f"the first {len(picked)} images of the split with at least one region; per attribute, those that have it",
                "pointing": "share of the map's maximal pixels inside the region",
                "mass_inside": "share of the map's mass above its minimum inside the region (vs area, the region's share of the image)",
                "auroc": "pixel values as a score for inside the region (Mann-Whitney, ties half)",
                "target": (
                    f"per attribute, the condition dimension with the highest AUROC against its labels on the "
                    f"first {self.config.selection_images} train images"
                    if source.targeted
                    else "none: one map per image, scored against each of its regions"
                ),
                **source.describe(),
            },
        }


def _summary(found: dict[str, list[Tensor]], target: Target | None) -> dict[str, Any] | None:
    if not found["pointing"]:
        return None
    values = {key: torch.cat(parts) for key, parts in found.items()}
    auroc = values["auroc"][~values["auroc"].isnan()]

    def mean(t: Tensor) -> float:
        return round(float(t.mean()), 4) if len(t) else float("nan")

    def std(t: Tensor) -> float:
        return round(float(t.std()), 4) if len(t) > 1 else 0.0

    out: dict[str, Any] = {
        "images": len(values["pointing"]),
        "pointing": mean(values["pointing"]),
        "pointing_std": std(values["pointing"]),
        "mass_inside": mean(values["mass"]),
        "mass_inside_std": std(values["mass"]),
        "area": mean(values["area"]),
        "mass_over_area": round(float(values["mass"].mean() / values["area"].mean()), 4),
        "auroc": mean(auroc),
        "auroc_std": std(auroc),
    }
    if target is not None:
        out["dimension"] = target.dimension_name
        out["dimension_auroc"] = target.auroc
    return out


@cache
def localisation_of(source: str) -> type[Localisation]:
    """The metric ``localisation-<source>``: :class:`Localisation` whose ``map`` defaults to the
    registered saliency ``source`` (an unknown one is a one-line error with the close names)."""
    registries().saliency.get(source)

    @dataclass
    class Config(Localisation.Config):
        map: ComponentSpec | None = component("saliency", source)

    doc = f"Localisation of the {source} maps (``localisation`` with ``map: {source}``)."
    return type(f"Localisation[{source}]", (Localisation,), {"Config": Config, "__doc__": doc})


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.metric.add("localisation", Localisation)
    registry.metric.add_family("localisation-", localisation_of)
    registry.saliency.add("random", RandomMap)
    registry.saliency.add("centre", CentreMap)
