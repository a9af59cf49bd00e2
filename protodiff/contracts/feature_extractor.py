"""The ``feature_extractor`` contract: the feature space a Fréchet or kernel distance is measured in.

FID and KID are only FID and KID in the feature space the literature uses (torch-fidelity's
``inception-v3-compat``, the TF-Inception port behind the published numbers); a distance in any
other space is not comparable with them. So every result is labelled by its extractor: ``FID`` /
``KID`` for the standard one, ``FD_<name>`` / ``KD_<name>`` for any other. The distances are
computed by torch-fidelity, which runs the network an extractor registers with it.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal


class FeatureExtractor(ABC):
    """Constructed as ``cls(name, weights)``: the registered name (for a family member its full
    name, e.g. ``timm-resnet18``) and a local weights path or None.

    The constructor checks the weights (a one-line ProtodiffError naming the file and the fix),
    so that an evaluation fails before it generates anything. Nothing is downloaded.
    """

    #: torch-fidelity's feature layer the distances are computed on.
    layer: ClassVar[str]
    #: True only for the feature space of published FID and KID numbers.
    standard: ClassVar[bool] = False

    def __init__(self, name: str, weights: str | os.PathLike[str] | None) -> None:
        self.name = name
        self.weights = None if weights is None else str(weights)

    @abstractmethod
    def torch_fidelity_name(self) -> str:
        """The name torch-fidelity knows the network by, registering it there first if needed
        (torch-fidelity is imported only here: it pulls in torchvision)."""

    def label(self, metric: Literal["fid", "kid"]) -> str:
        """``FID``/``KID`` in the standard feature space; ``FD_<name>``/``KD_<name>`` in any other."""
        if self.standard:
            return metric.upper()
        return {"fid": "FD", "kid": "KD"}[metric] + "_" + self.name

    def calculate_metrics_kwargs(self) -> dict[str, Any]:
        """The ``torch_fidelity.calculate_metrics`` arguments that select this extractor."""
        return {
            "feature_extractor": self.torch_fidelity_name(),
            "feature_layer_fid": self.layer,
            "feature_layer_kid": self.layer,
            "feature_extractor_weights_path": self.weights,
        }

    def describe(self) -> dict[str, Any]:
        """What is recorded beside every result."""
        return {"name": self.name, "layer": self.layer, "weights": self.weights}
