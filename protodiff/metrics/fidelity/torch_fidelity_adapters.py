"""The networks of the offline feature extractors, as torch-fidelity ``FeatureExtractorBase``
subclasses: what torch-fidelity runs once :mod:`.feature_extractors` has checked the weights.

torch-fidelity builds an extractor as ``cls(name, features_list, **calculate_metrics_kwargs)``
and feeds it batches of the input Dataset's tensors (uint8 (B, 3, H, W) images here, except for
``identity``, which takes any tensor). Imported only when a distance is computed: torch-fidelity
pulls in torchvision.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from protodiff.errors import ProtodiffError
from protodiff.metrics.attribute_classifier import AttributeClassifier


class IdentityAdapter(FeatureExtractorBase):
    """The input itself, flattened to (B, D) float64: a Fréchet distance in input space."""

    def __init__(self, name: str, features_list: list[str], **_: Any) -> None:
        super().__init__(name, features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("flat",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "flat"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return (x.flatten(1).to(torch.float64),)


class _ImageAdapter(FeatureExtractorBase):
    """Base of the extractors that read uint8 image batches and load local weights.

    The weights path arrives as torch-fidelity's own ``feature_extractor_weights_path`` argument.
    """

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.weights = kwargs.get("feature_extractor_weights_path")
        if self.weights is None:  # the registered extractor checks this first; a direct caller may not
            raise ValueError(f"feature extractor {name!r} needs feature_extractor_weights_path")

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("pool",)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "pool"

    @staticmethod
    def can_be_compiled() -> bool:
        return False


class TimmAdapter(_ImageAdapter):
    """A timm backbone's pooled (pre-classifier) features; each ``timm-<model>`` is a subclass
    setting ``model_name``.

    The file is read by ``timm.models.load_state_dict`` (safetensors, or ``torch.load`` with
    ``weights_only=True``) and must fill every backbone parameter; only classifier-head keys may
    be left over. (timm's own ``pretrained_cfg_overlay=dict(file=...)`` merely warns about
    mismatched keys, which would silently measure distances in a random network's features.)
    """

    model_name: ClassVar[str]

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        import timm

        super().__init__(name, features_list, **kwargs)
        self.net = timm.create_model(self.model_name, pretrained=False, num_classes=0)
        missing, unexpected = self.net.load_state_dict(timm.models.load_state_dict(str(self.weights)), strict=False)
        head = self.net.pretrained_cfg.get("classifier") or ()
        heads = tuple(head) if isinstance(head, (list, tuple)) else (head,)
        stray = [k for k in unexpected if not k.startswith(tuple(h + "." for h in heads))]
        if missing or stray:
            raise ProtodiffError(
                f"{self.weights}: not the weights of timm model {self.model_name!r} "
                f"(missing {missing[:3]}, unexpected {stray[:3]})"
            )
        config = timm.data.resolve_model_data_config(self.net)
        self.input_size = tuple(config["input_size"][1:])
        self.register_buffer("mean", torch.tensor(config["mean"]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(config["std"]).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = F.interpolate(x.float() / 255.0, size=self.input_size, mode="bilinear", align_corners=False)
        return (self.net((x - self.mean) / self.std).float(),)


class ClassifierAdapter(_ImageAdapter):
    """Pooled features of an attribute classifier trained on the evaluated dataset."""

    def __init__(self, name: str, features_list: list[str], **kwargs: Any) -> None:
        super().__init__(name, features_list, **kwargs)
        self.classifier = AttributeClassifier.load(self.weights)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        images = x.float() / 127.5 - 1.0
        if self.classifier.in_channels == 1:
            images = images.mean(dim=1, keepdim=True)  # undo the grey -> RGB replication of the inputs
        return (self.classifier.features(images).float(),)


def timm_adapter(model: str) -> type[TimmAdapter]:
    return type(f"TimmAdapter_{model}", (TimmAdapter,), {"model_name": model})


def ensure_registered(name: str, cls: type[FeatureExtractorBase]) -> str:
    """Register ``cls`` with torch-fidelity under ``name`` unless it already is (it refuses twice)."""
    if name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(name, cls)
    return name
