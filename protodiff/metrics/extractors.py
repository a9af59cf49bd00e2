"""Which feature space a Fréchet or kernel distance is measured in, and what the result is called.

FID is only FID with torch-fidelity's ``inception-v3-compat`` network (the TF-Inception port the
published numbers use: Patronus via pytorch_fid, InfoDiffusion via clean-fid) and its weights
file. Those weights cannot always be downloaded, so :func:`resolve_extractor` either finds the
file (``--inception-weights PATH`` or the torch hub cache torch-fidelity itself reads) or fails
with one line naming the file, its URL and the directory to put it in.

For offline work there are explicitly named alternatives (:mod:`.feature_extractors`), registered
in torch-fidelity's own registry so they run through the same ``calculate_metrics`` code:

``identity``
    The flattened input as features (pixels, for images): a Fréchet distance in input space,
    exact for the analytic Gaussian test.
``timm-<model>``
    A timm backbone's pooled features, weights read from a local file (``.safetensors`` or a
    state-dict ``.pth``).
``attribute-classifier``
    The pooled features of an :class:`~protodiff.metrics.classifier.AttributeClassifier`
    trained on the dataset itself (weights: its directory).

Their results are labelled ``FD_<extractor>`` / ``KD_<extractor>``, never FID or KID: a distance
in another feature space is not comparable with the literature. torch-fidelity is imported only
when an extractor is resolved (it pulls in torchvision; every CLI command builds the registries).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from protodiff.errors import ProtodiffError

INCEPTION = "inception-v3-compat"
#: pool3, the 2048-d layer of pytorch_fid (Patronus) and of torch-fidelity's FID and KID defaults.
INCEPTION_LAYER = "2048"
IDENTITY = "identity"
CLASSIFIER = "attribute-classifier"
TIMM_PREFIX = "timm-"


def inception_url() -> str:
    """The URL torch-fidelity downloads ``inception-v3-compat``'s weights from."""
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def inception_file() -> str:
    """The weights file's name: torch.hub names the download after the URL's last component."""
    return os.path.basename(inception_url())


def inception_cache_dir() -> Path:
    """Where torch-fidelity looks for (and would download) the Inception weights:
    ``torch.hub.load_state_dict_from_url``'s ``<torch hub dir>/checkpoints`` ($TORCH_HOME/hub)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def missing_inception_message() -> str:
    return (
        f"FID needs torch-fidelity's Inception weights {inception_file()} (download {inception_url()}) "
        f"and this machine has no copy: pass --inception-weights PATH, or put the file in "
        f"{inception_cache_dir()} (the torch hub cache torch-fidelity reads; $TORCH_HOME moves it); "
        f"offline, --extractor {IDENTITY}|{CLASSIFIER}|{TIMM_PREFIX}<model> computes FD_<extractor> instead"
    )


@dataclass(frozen=True)
class Extractor:
    """A resolved extractor: torch-fidelity's name for it, its feature layer and local weights."""

    name: str
    layer: str
    weights: str | None = None

    @property
    def is_inception(self) -> bool:
        return self.name == INCEPTION

    def label(self, metric: str) -> str:
        """``FID``/``KID`` with Inception; ``FD_<name>``/``KD_<name>`` with anything else."""
        if self.is_inception:
            return metric.upper()
        return {"fid": "FD", "kid": "KD"}[metric] + "_" + self.name

    def kwargs(self) -> dict[str, Any]:
        """The ``torch_fidelity.calculate_metrics`` arguments that select this extractor."""
        return {
            "feature_extractor": self.name,
            "feature_layer_fid": self.layer,
            "feature_layer_kid": self.layer,
            "feature_extractor_weights_path": self.weights,
        }

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "weights": self.weights}


def _check_state_dict(path: Path) -> None:
    """Refuse an Inception file that is missing or holds more than tensors.

    torch-fidelity unpickles it with ``weights_only=False``; reading it here first with
    ``weights_only=True`` makes sure no code can run from it.
    """
    if not path.is_file():
        raise ProtodiffError(f"{path}: Inception weights file not found")
    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # anything but tensors in plain containers, or not a torch file at all
        raise ProtodiffError(f"{path}: not a plain PyTorch state dict ({' '.join(str(exc).split())[:160]})") from None


def resolve_extractor(name: str = INCEPTION, weights: str | os.PathLike | None = None) -> Extractor:
    """The extractor called ``name``, its weights found and it registered with torch-fidelity.

    Raises a one-line ProtodiffError for an unknown name or missing weights; the metrics call it
    before generating anything, so a long evaluation never fails at its last step.
    """
    from protodiff.metrics import feature_extractors as nets

    if name == INCEPTION:
        path = Path(weights) if weights is not None else inception_cache_dir() / inception_file()
        if weights is None and not path.is_file():
            raise ProtodiffError(missing_inception_message())
        _check_state_dict(path)
        return Extractor(INCEPTION, INCEPTION_LAYER, str(path))
    if name == IDENTITY:
        if weights is not None:
            raise ProtodiffError(f"extractor {IDENTITY!r} has no weights; drop --extractor-weights")
        nets.ensure_registered(IDENTITY, nets.IdentityExtractor)
        return Extractor(IDENTITY, "flat")
    if name != CLASSIFIER and not name.startswith(TIMM_PREFIX):
        raise ProtodiffError(
            f"unknown feature extractor {name!r}; choose {INCEPTION}, {IDENTITY}, {CLASSIFIER} or {TIMM_PREFIX}<timm model>"
        )
    if weights is None:
        raise ProtodiffError(f"extractor {name!r} needs --extractor-weights PATH (nothing is downloaded here)")
    if not Path(weights).exists():
        raise ProtodiffError(f"{weights}: weights for extractor {name!r} not found")
    if name == CLASSIFIER:
        nets.ensure_registered(CLASSIFIER, nets.ClassifierExtractor)
        return Extractor(CLASSIFIER, "pool", str(weights))
    import timm

    model = name[len(TIMM_PREFIX) :]
    if not timm.is_model(model):
        raise ProtodiffError(f"extractor {name!r}: timm has no model {model!r}")
    nets.ensure_registered(name, nets.timm_extractor(model))
    return Extractor(name, "pool", str(weights))
