"""The registered feature extractors: which feature space a distance is measured in, its weights
checked before anything is generated.

``inception-v3-compat``
    FID and KID proper: torch-fidelity's TF-Inception port and its pool3 (2048-d) layer, the
    network behind the published numbers (Patronus via pytorch_fid, InfoDiffusion via
    clean-fid). Its weights cannot always be downloaded, so the file is found (a given path, or
    the torch hub cache torch-fidelity itself reads) or the error names the file, its URL and the
    directory to put it in.
``identity``
    The flattened input as features (pixels, for images): a Fréchet distance in input space,
    exact for the analytic Gaussian test.
``attribute-classifier``
    The pooled features of an :class:`~protodiff.metrics.attribute_classifier.AttributeClassifier`
    trained on the dataset itself (weights: its directory).
``timm-<model>``
    A timm backbone's pooled features, weights read from a local file (``.safetensors`` or a
    state-dict ``.pth``).

Every extractor but the first gives ``FD_<name>`` / ``KD_<name>``, never FID or KID (see
:mod:`protodiff.contracts.feature_extractor`). Their networks, as torch-fidelity runs them, are in
:mod:`.torch_fidelity_adapters`, imported only when a distance is computed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import torch

from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.manager import registries
from protodiff._registry.registry import Registries
from protodiff.contracts.feature_extractor import FeatureExtractor
from protodiff.errors import ProtodiffError

INCEPTION = "inception-v3-compat"


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
    offline = "|".join(name for name in registries().feature_extractor.names() if name != INCEPTION)
    return (
        f"FID needs torch-fidelity's Inception weights {inception_file()} (download {inception_url()}) "
        f"and this machine has no copy: pass --inception-weights PATH, or put the file in "
        f"{inception_cache_dir()} (the torch hub cache torch-fidelity reads; $TORCH_HOME moves it); "
        f"offline, --extractor {offline} computes FD_<extractor> instead"
    )


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


class InceptionV3Compat(FeatureExtractor):
    """torch-fidelity's TF-Inception port, pool3: the feature space of published FID and KID."""

    #: pool3, the 2048-d layer of pytorch_fid (Patronus) and of torch-fidelity's FID and KID defaults.
    layer: ClassVar[str] = "2048"
    standard: ClassVar[bool] = True

    def __init__(self, name: str, weights: str | os.PathLike | None) -> None:
        path = Path(weights) if weights is not None else inception_cache_dir() / inception_file()
        if weights is None and not path.is_file():
            raise ProtodiffError(missing_inception_message())
        _check_state_dict(path)
        super().__init__(name, path)

    def torch_fidelity_name(self) -> str:
        return INCEPTION  # built into torch-fidelity


class Identity(FeatureExtractor):
    """The flattened input: a Fréchet distance in input space."""

    layer: ClassVar[str] = "flat"

    def __init__(self, name: str, weights: str | os.PathLike | None) -> None:
        if weights is not None:
            raise ProtodiffError(f"extractor {name!r} has no weights; drop --extractor-weights")
        super().__init__(name, None)

    def torch_fidelity_name(self) -> str:
        from protodiff.metrics.fidelity.torch_fidelity_adapters import IdentityAdapter, ensure_registered

        return ensure_registered(self.name, IdentityAdapter)


class _LocalWeights(FeatureExtractor):
    """An extractor whose weights the user must give (nothing is downloaded here)."""

    layer: ClassVar[str] = "pool"

    def __init__(self, name: str, weights: str | os.PathLike | None) -> None:
        if weights is None:
            raise ProtodiffError(f"extractor {name!r} needs --extractor-weights PATH (nothing is downloaded here)")
        if not Path(weights).exists():
            raise ProtodiffError(f"{weights}: weights for extractor {name!r} not found")
        super().__init__(name, weights)


class AttributeClassifierFeatures(_LocalWeights):
    """Pooled features of an attribute classifier trained on the evaluated dataset (weights: its directory)."""

    def torch_fidelity_name(self) -> str:
        from protodiff.metrics.fidelity.torch_fidelity_adapters import ClassifierAdapter, ensure_registered

        return ensure_registered(self.name, ClassifierAdapter)


class TimmFeatures(_LocalWeights):
    """A timm backbone's pooled features; each ``timm-<model>`` is a subclass setting ``model_name``."""

    model_name: ClassVar[str]

    def __init__(self, name: str, weights: str | os.PathLike | None) -> None:
        super().__init__(name, weights)
        import timm

        if not timm.is_model(self.model_name):
            raise ProtodiffError(f"extractor {name!r}: timm has no model {self.model_name!r}")

    def torch_fidelity_name(self) -> str:
        from protodiff.metrics.fidelity.torch_fidelity_adapters import ensure_registered, timm_adapter

        return ensure_registered(self.name, timm_adapter(self.model_name))


def timm_features(model: str) -> type[TimmFeatures]:
    return type(f"TimmFeatures_{model}", (TimmFeatures,), {"model_name": model})


def resolve_extractor(name: str = INCEPTION, weights: str | os.PathLike | None = None) -> FeatureExtractor:
    """The registered extractor ``name`` with its weights checked.

    Raises a one-line ProtodiffError for an unknown name (with the closest registered ones) or
    missing weights; the metrics call it before generating anything, so a long evaluation never
    fails at its last step.
    """
    return registries().feature_extractor.get(name)(name, weights)


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.feature_extractor.add(INCEPTION, InceptionV3Compat)
    registry.feature_extractor.add("identity", Identity)
    registry.feature_extractor.add("attribute-classifier", AttributeClassifierFeatures)
    registry.feature_extractor.add_family("timm-", timm_features)
