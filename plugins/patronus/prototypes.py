"""Prototype layers: patch features -> one activation per prototype, and where it fired.

``log-l2`` is Patronus' (after ProtoPNet): the squared L2 distance from every patch to every
prototype, the minimum over patches, and s = log((d + 1) / (d + eps)), large when some patch is
close. ``cosine`` is the usual alternative: the best cosine similarity over patches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from protodiff.conditioning import PrototypeLayer


def patch_prototype_distances(z: Tensor, prototypes: Tensor) -> Tensor:
    """Squared L2 distances (B, m, H, W) between each patch of ``z`` (B, D, H, W) and each prototype (m, D).

    Expanded as |z|^2 - 2 z.p + |p|^2 so the largest intermediate is (B, m, H, W), never the
    (B, m, H, W, D) difference tensor; clamped at 0 against round-off, as published.
    """
    z_sq = z.square().sum(dim=1, keepdim=True)
    cross = torch.einsum("bdhw,md->bmhw", z, prototypes)
    p_sq = prototypes.square().sum(dim=1)[None, :, None, None]
    return F.relu(z_sq - 2 * cross + p_sq)


def distinct_loss(prototypes: Tensor, margin: float) -> Tensor:
    """Push each prototype away from its nearest neighbour: mean relu(margin - min_j (1 - |cos|)).

    The distinct loss Patronus evaluates (and finds barely changes the prototypes); off by default.
    """
    unit = F.normalize(prototypes, dim=1)
    distance = 1 - (unit @ unit.T).abs()
    distance = distance + torch.eye(len(prototypes), device=prototypes.device) * 2  # exclude j == i
    return F.relu(margin - distance.min(dim=1).values).mean()


class LogL2Prototypes(PrototypeLayer):
    """Patronus' prototype layer: ``m`` learnable (D,) prototypes, uniform [0, 1) init as published."""

    @dataclass
    class Config:
        num_prototypes: int = 100
        epsilon: float = 1e-4
        #: Weight of the prototype-distinct loss (0 = off, the published default).
        distinct_weight: float = 0.0
        distinct_margin: float = 0.2

        def __post_init__(self) -> None:
            if self.num_prototypes < 1:
                raise ValueError("num_prototypes must be positive")
            if self.epsilon <= 0:
                raise ValueError("epsilon must be positive (it bounds s at log(1/epsilon))")

    presets = {"test": {"num_prototypes": 6}}

    def __init__(self, config: Config, *, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.num_prototypes = config.num_prototypes
        self.prototypes = nn.Parameter(torch.rand(config.num_prototypes, feature_dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        distances = patch_prototype_distances(z, self.prototypes)
        nearest = distances.flatten(2).min(dim=2).values
        return torch.log((nearest + 1) / (nearest + self.config.epsilon)), distances

    def aux_loss(self) -> Tensor | None:
        if self.config.distinct_weight == 0:
            return None
        return self.config.distinct_weight * distinct_loss(self.prototypes, self.config.distinct_margin)


class CosinePrototypes(PrototypeLayer):
    """Activation = the best cosine similarity between any patch and the prototype, in [-1, 1].

    The returned maps are cosine *distances* (1 - cos), so that for every prototype layer a small
    map value means "this patch looks like the prototype".
    """

    @dataclass
    class Config:
        num_prototypes: int = 100

    presets = {"test": {"num_prototypes": 6}}

    def __init__(self, config: Config, *, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.num_prototypes = config.num_prototypes
        self.prototypes = nn.Parameter(torch.randn(config.num_prototypes, feature_dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        cosine = torch.einsum("bdhw,md->bmhw", F.normalize(z, dim=1), F.normalize(self.prototypes, dim=1))
        return cosine.flatten(2).max(dim=2).values, 1 - cosine
