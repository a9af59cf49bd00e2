"""What the explorer's page receives: the library's results as JSON-ready dicts.

Images travel as PNG data URLs at the run's own size (the page scales them up, pixelated), so a
picture, an edit and its whole timeline arrive in one response and nothing is written to disk.
Numbers are rounded to 4 decimals: the page draws them, and the payload of a 512-dimension DiffAE
timeline stays small. No web library is imported here.
"""

from __future__ import annotations

import base64
import io
import math
from typing import TYPE_CHECKING, Any

from torch import Tensor

from protodiff.figures import to_pil

if TYPE_CHECKING:
    from protodiff.contracts.explainer import Explanation
    from protodiff.explore.session import EditResult, Explorer, Picture, SavedEffects, Timeline


def png(image: Tensor) -> str:
    """One (C, H, W) image in [-1, 1] as a PNG data URL, at its own size."""
    buffer = io.BytesIO()
    to_pil(image, 1).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def numbers(values: Tensor) -> Any:
    """A tensor as nested lists of floats rounded to 4 decimals (a non-finite value as None: JSON has no NaN)."""
    return _finite(values.detach().float().cpu().round(decimals=4).tolist())


def _finite(value: Any) -> Any:
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value if math.isfinite(value) else None


def timeline(walk: Timeline) -> dict[str, Any]:
    return {
        "timesteps": walk.timesteps,
        "frames": [png(frame) for frame in walk.x0_hat],
        "activations": numbers(walk.activations),
    }


def picture(item: Picture) -> dict[str, Any]:
    return {
        "key": item.key,
        "label": item.label,
        "image": png(item.image),
        "regenerated": png(item.baseline.x0_hat[-1]),
        "vector": numbers(item.vector),
        "maps": numbers(item.maps) if item.maps is not None else None,
        "attributes": item.attributes,
        "baseline": timeline(item.baseline),
    }


def edit(result: EditResult) -> dict[str, Any]:
    return {
        "key": result.picture.key,
        "vector": numbers(result.vector),
        "followed": numbers(result.followed),
        "image": png(result.image),
        "after": numbers(result.after),
        "maps": numbers(result.maps) if result.maps is not None else None,
        "timeline": timeline(result.timeline),
        "seconds": round(result.seconds, 4),
    }


def effects(explorer: Explorer, saved: SavedEffects) -> dict[str, Any]:
    """A saved effect matrix (and ranking) with, for each dimension it covers, the value its cells set the slider to."""
    return {
        "name": saved.path.name,
        "explainer": saved.explainer,
        "dimensions": saved.dimensions,
        "attributes": saved.attributes,
        "effect": saved.effect,
        "success": saved.success,
        "leakage": saved.leakage,
        "images": saved.images,
        "quantile": saved.quantile,
        "rows": explorer.strongest_dimensions(saved),
        "enhanced": [round(explorer.enhanced(j, saved.quantile), 4) for j in range(len(saved.dimensions))],
        "couplings": saved.couplings,
    }


def run(explorer: Explorer) -> dict[str, Any]:
    """What the page builds itself from: the run, one slider per dimension, the split, the saved explanations."""
    low, high = explorer.slider_range()
    suggested = explorer.suggested()
    settings = explorer.settings
    return {
        "run": str(explorer.run) if explorer.run is not None else "(a model in memory)",
        "conditioner": explorer.experiment.model.conditioner.name,
        "dataset": explorer.experiment.data.name,
        "image_size": explorer.model.image_size,
        "dimensions": [
            {
                "index": j,
                "name": name,
                "suggested": suggested.get(j),
                "evidence": explorer.evidence(j) if explorer.effects else None,
                "low": round(float(low[j]), 4),
                "high": round(float(high[j]), 4),
                "observed": [round(float(explorer.low[j]), 4), round(float(explorer.high[j]), 4)],
            }
            for j, name in enumerate(explorer.names)
        ],
        "test_images": len(explorer.data),
        "attributes": explorer.attribute_names,
        "effects": [effects(explorer, saved) for saved in explorer.effects],
        "notes": explorer.notes,
        "settings": {
            "sampler": settings.sampler.name,
            "steps": explorer.sampler.config.steps,
            "guidance": settings.guidance,
            "start": settings.start,
        },
    }


def thumbnails(explorer: Explorer, indices: list[int]) -> dict[str, Any]:
    return {"indices": indices, "images": [png(explorer.test_image(i)) for i in indices]}


def gallery(explanation: Explanation) -> dict[str, Any]:
    """The ``prototypes`` explanation: per prototype its nearest training patch, and per image its
    regeneration with the prototype turned up and the patch where it fires most."""
    tensors = explanation.tensors
    return {
        "images": [png(image) for image in tensors["images"]],
        "prototypes": [
            {
                "index": entry["index"],
                "name": entry["prototype"],
                "target": round(entry["target"], 4),
                "nearest": png(tensors["nearest_crops"][k]),
                "regenerated": [png(image) for image in tensors["regenerated"][k]],
                "crops": [png(image) for image in tensors["crops"][k]],
            }
            for k, entry in enumerate(explanation.meta["prototypes"])
        ],
    }
