"""Prototype encoders: images -> patch features ``z`` whose every position has a known pixel box.

``patronus-conv`` is the published encoder: a plain stack of Conv+ReLU (no normalisation, weights
drawn from N(0, 0.1)), small enough that each output position sees a local patch (15 px at
32/64 px inputs). ``timm-<name>`` uses any timm backbone as the encoder instead.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from protodiff import Registries, hookimpl
from protodiff.errors import ConfigError, ProtodiffError, UnknownComponentError
from protodiff.validation import at_least
from protodiff_patronus.contracts import Box, Encoder


def input_interval(layers: list[tuple[int, int, int]], index: int, size: int) -> tuple[int, int]:
    """The input rows [first, last + 1) that output row ``index`` of a conv stack depends on.

    ``layers`` lists (kernel, stride, padding) from input to output. Walking back one layer, the
    interval [a, b] of its output comes from [a*s - p, b*s - p + k - 1] of its input; the result
    is clipped to the image, because padding pixels are not pixels.
    """
    first, last = index, index
    for kernel, stride, padding in reversed(layers):
        first, last = first * stride - padding, last * stride - padding + kernel - 1
    return max(first, 0), min(last, size - 1) + 1


class PatronusConvEncoder(Encoder):
    """Conv+ReLU layers, as published (see docs/reference.md, "Patronus")."""

    @dataclass
    class Config:
        #: Output channels of each layer (the input channels come from the data).
        channels: tuple[int, ...] = (32, 64, 64, 128)
        kernel_sizes: tuple[int, ...] = (3, 3, 3, 3)
        strides: tuple[int, ...] = (2, 1, 1, 1)
        paddings: tuple[int, ...] = (1, 0, 0, 0)
        #: Standard deviation of the N(0, std) weight init (Patronus: 0.1).
        init_std: float = 0.1
        #: Activation of the last layer: ``relu`` as published, or ``sigmoid`` as ProtoPNet's add-on
        #: layers, which keeps features in [0, 1]^D, the box the prototypes are initialised in, so
        #: patch-prototype distances stay bounded however long the encoder trains.
        output: Literal["relu", "sigmoid"] = "relu"

        def __post_init__(self) -> None:
            lengths = {len(self.channels), len(self.kernel_sizes), len(self.strides), len(self.paddings)}
            if len(lengths) != 1 or not self.channels:
                raise ValueError("channels, kernel_sizes, strides and paddings need one entry per layer")
            at_least(1, channels=self.channels, kernel_sizes=self.kernel_sizes, strides=self.strides)
            at_least(0, paddings=self.paddings, init_std=self.init_std)

    presets = {
        # 32 and 64 px (FMNIST, CIFAR-10, CelebA, FFHQ): 10x10 and 26x26 maps, 15 px receptive field.
        "published": {},
        # CheXpert at 224 px: five 5x5 layers, 43x43 map.
        "chexpert-224": {
            "channels": (32, 64, 64, 128, 128),
            "kernel_sizes": (5, 5, 5, 5, 5),
            "strides": (2, 2, 1, 1, 1),
            "paddings": (1, 1, 0, 0, 0),
        },
    }

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.image_size = image_size
        layers: list[nn.Module] = []
        previous = in_channels
        for out, kernel, stride, padding in zip(config.channels, config.kernel_sizes, config.strides, config.paddings):
            conv = nn.Conv2d(previous, out, kernel, stride=stride, padding=padding)
            nn.init.normal_(conv.weight, std=config.init_std)
            layers += [conv, nn.ReLU()]
            previous = out
        if config.output == "sigmoid":
            layers[-1] = nn.Sigmoid()
        self.features = nn.Sequential(*layers)
        self.out_channels = previous
        self._geometry = list(zip(config.kernel_sizes, config.strides, config.paddings))
        side = image_size
        for kernel, stride, padding in self._geometry:
            side = (side + 2 * padding - kernel) // stride + 1
        if side < 1:
            raise ConfigError(f"patronus-conv: a {image_size} px input leaves no feature map; use a smaller stack")

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)

    def receptive_field(self, i: int, j: int) -> Box:
        top, bottom = input_interval(self._geometry, i, self.image_size)
        left, right = input_interval(self._geometry, j, self.image_size)
        return Box(top, left, bottom, right)


class TimmEncoder(Encoder):
    """Any timm backbone (``features_only``) as a prototype encoder: ``timm-<model name>``.

    Weights are random unless ``weights`` names a local checkpoint file (nothing is downloaded).
    Backbones mix normalisation, pooling and attention, so the receptive field is *measured*: the
    input pixels with a non-zero gradient to a feature position, on a fixed probe image (cached).
    """

    model_name: str = ""

    @dataclass
    class Config:
        #: Which feature level of the backbone to use (index into its feature_info; -1 = deepest).
        feature_level: int = -1
        #: A local checkpoint of the backbone (timm's own keys), e.g. from the timm/Hugging Face hub.
        weights: str | None = None

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        import timm

        self.config = config
        self.image_size = image_size
        self.in_channels = in_channels
        overlay = {}
        if config.weights is not None:
            path = Path(config.weights).expanduser()
            if not path.is_file():
                raise ProtodiffError(
                    f"timm-{self.model_name}: weights file {path} not found; download the checkpoint for "
                    f"'{self.model_name}' (e.g. from huggingface.co/timm) and set encoder.weights to its path"
                )
            overlay = {"pretrained_cfg_overlay": {"file": str(path)}}
        probe = timm.create_model(self.model_name, pretrained=False, features_only=True, in_chans=in_channels)
        level = range(len(probe.feature_info))[config.feature_level]
        self.backbone = timm.create_model(
            self.model_name,
            pretrained=config.weights is not None,
            features_only=True,
            out_indices=(level,),
            in_chans=in_channels,
            **overlay,
        )
        self.out_channels = self.backbone.feature_info.channels()[-1]
        self._boxes: dict[tuple[int, int], Box] = {}

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone(x)[-1]

    def receptive_field(self, i: int, j: int) -> Box:
        if (i, j) not in self._boxes:
            self._boxes[(i, j)] = self._measure(i, j)
        return self._boxes[(i, j)]

    def _measure(self, i: int, j: int) -> Box:
        was_training = self.training
        self.eval()
        probe = (
            torch.randn(1, self.in_channels, self.image_size, self.image_size, generator=torch.Generator().manual_seed(0))
            .to(next(self.parameters()).device)
            .requires_grad_(True)
        )
        self(probe)[0, :, i, j].abs().sum().backward()
        self.train(was_training)
        rows, cols = (probe.grad[0].abs().sum(0) > 0).nonzero(as_tuple=True)
        if rows.numel() == 0:
            raise ProtodiffError(f"timm-{self.model_name}: feature position ({i}, {j}) does not depend on any pixel")
        return Box(rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1)


@cache
def timm_encoder(model_name: str) -> type[TimmEncoder]:
    """The ``timm-<model_name>`` encoder class (a family member of the encoder registry)."""
    import timm

    if not timm.is_model(model_name):
        close = difflib.get_close_matches(model_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; close: {', '.join(close)}" if close else ""
        raise UnknownComponentError(f"unknown encoder timm-{model_name}: timm has no model {model_name!r}{hint}")
    return type(f"TimmEncoder[{model_name}]", (TimmEncoder,), {"model_name": model_name})


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.encoder.add("patronus-conv", PatronusConvEncoder)
    registry.encoder.add_family("timm-", timm_encoder)
