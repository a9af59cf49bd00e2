"""Prototype layers: patch features -> one activation per prototype, and where it fired.

``log-l2`` is Patronus' (after ProtoPNet): the squared L2 distance from every patch to every
prototype, the minimum over patches, and s = log((d + 1) / (d + eps)), large when some patch is
close. ``cosine`` is the usual alternative: the best cosine similarity over patches.

Both compute in fp32 whatever autocast chose for the encoder: a squared distance expanded as
|z|^2 - 2 z.p + |p|^2 cancels most of its digits exactly where activations are largest (a patch
close to a prototype), and bf16 keeps only three of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from protodiff import Registries, hookimpl
from protodiff.validation import at_least, between, positive
from protodiff_patronus.contracts import PrototypeLayer


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


def farthest_point_patches(z: Tensor, count: int, keep: Tensor | None = None) -> Tensor:
    """``count`` patches of ``z`` (B, D, H, W) chosen greedily to be far from each other.

    Starting from the patch farthest from the mean (or from the points ``keep`` (k, D) when given),
    each next pick is the patch farthest from all picks so far; rare patches (a small mark) are
    picked before the tenth copy of the background.
    """
    patches = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
    if keep is not None and len(keep):
        nearest = torch.cdist(patches, keep.detach()).square().min(dim=1).values
    else:
        nearest = (patches - patches.mean(0)).square().sum(1)
    picks = []
    for _ in range(count):
        index = int(nearest.argmax())
        picks.append(index)
        nearest = torch.minimum(nearest, (patches - patches[index]).square().sum(1))
    return patches[picks]


def activation_correlation(s: Tensor) -> Tensor:
    """(m, m) Pearson correlation of the prototypes' activations over a batch ``s`` (B, m)."""
    centred = s - s.mean(0)
    normed = centred / (centred.norm(dim=0) + 1e-6)
    return normed.T @ normed


def correlation_penalty(s: Tensor) -> Tensor:
    """Mean squared off-diagonal activation correlation over the batch."""
    corr = activation_correlation(s)
    m = corr.shape[0]
    return (corr.square().sum() - corr.diagonal().square().sum()) / max(1, m * (m - 1))


def redundant_prototypes(s: Tensor, threshold: float) -> Tensor:
    """(m,) mask of prototypes that duplicate an earlier one (|correlation| > ``threshold`` over the
    batch) or barely vary (std below 1% of the mean std): candidates for a restart."""
    corr = activation_correlation(s).abs().triu(diagonal=1)
    duplicate = (corr > threshold).any(dim=0)
    std = s.std(dim=0)
    return duplicate | (std <= 0.01 * std.mean())


class LogL2Prototypes(PrototypeLayer):
    """Patronus' prototype layer: ``m`` learnable (D,) prototypes, uniform [0, 1) init as published.

    ``init: patches`` instead places the prototypes on diverse patches of the first batch the layer
    sees (farthest-point sampling). With the published init every patch starts far from every
    prototype (s ~ 1/d, nearly constant), so the condition carries almost nothing until training
    has moved them, which takes the paper's hundreds of epochs; starting on real patches makes s
    informative from the first step, which short runs need.
    """

    @dataclass
    class Config:
        num_prototypes: int = 100
        epsilon: float = 1e-4
        init: Literal["uniform", "patches"] = "uniform"
        #: Weight of the prototype-distinct loss (0 = off, the published default).
        distinct_weight: float = 0.0
        distinct_margin: float = 0.2
        #: Every this many training batches, re-place redundant prototypes (activations over the
        #: batch correlated above ``restart_correlation`` with another's, or constant) on the
        #: batch's patches farthest from the rest, as VQ-VAE codebooks restart dead codes (null: off).
        restart_every: int | None = None
        restart_correlation: float = 0.9
        #: Every this many training batches, move each prototype onto its nearest patch of the
        #: batch (ProtoPNet's projection, on a batch rather than the whole train set; null: off).
        project_every: int | None = None
        #: Weight of a penalty on the squared correlation between prototypes' activations over the
        #: batch (0 = off): two prototypes that fire on the same images are one concept twice.
        decorrelation_weight: float = 0.0
        #: The last this many prototypes are read out by the *mean* of their activation over patches
        #: instead of the max: how much of the image looks like the prototype, not whether some
        #: patch does. A background colour is a property of every patch; a max-pooled "light
        #: patch" prototype still fires on a dark image with one light mark, so no value of it
        #: asks the denoiser for a dark background (docs/steering.md, "Global prototypes").
        global_prototypes: int = 0

        def __post_init__(self) -> None:
            at_least(1, num_prototypes=self.num_prototypes, restart_every=self.restart_every, project_every=self.project_every)
            between(0, self.num_prototypes, global_prototypes=self.global_prototypes)
            positive(epsilon=self.epsilon)  # it bounds s at log(1/epsilon)
            at_least(
                0,
                distinct_weight=self.distinct_weight,
                distinct_margin=self.distinct_margin,
                decorrelation_weight=self.decorrelation_weight,
            )
            between(-1.0, 1.0, restart_correlation=self.restart_correlation)

    presets = {"test": {"num_prototypes": 6}}

    def __init__(self, config: Config, *, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.num_prototypes = config.num_prototypes
        self.prototypes = nn.Parameter(torch.rand(config.num_prototypes, feature_dim))
        # Saved with the weights, so a resumed or loaded model is never re-initialised.
        self.register_buffer("initialised", torch.tensor(config.init == "uniform"))
        if config.restart_every or config.project_every:  # counts batches for both schedules (saved, so resumes agree)
            self.register_buffer("batches_seen", torch.tensor(0))
        self._last_s: Tensor | None = None

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(z.device.type, enabled=False):
            return self._activations(z.float())

    def _activations(self, z: Tensor) -> tuple[Tensor, Tensor]:
        if not self.initialised:
            self._place_on_patches(z)
        if self.training and torch.is_grad_enabled() and hasattr(self, "batches_seen"):
            self._maintain(z)
        distances = patch_prototype_distances(z, self.prototypes)
        s = self._read_out(distances)
        self._last_s = s if self.training else None
        return s, distances

    def _read_out(self, distances: Tensor) -> Tensor:
        """s (B, m) from the distance maps: the activation of the nearest patch, or for the last
        ``global_prototypes`` the mean activation over patches."""
        nearest = distances.flatten(2).min(dim=2).values
        s = self.patch_activations(nearest)
        count = self.config.global_prototypes
        if count:
            spread = self.patch_activations(distances[:, -count:]).flatten(2).mean(dim=2)
            s = torch.cat([s[:, :-count], spread], dim=1)
        return s

    def patch_activations(self, maps: Tensor) -> Tensor:
        """log((d + 1) / (d + epsilon)) of every patch's distance: ``s`` is its maximum over patches
        (its mean for the ``global_prototypes``)."""
        return torch.log((maps.float() + 1) / (maps.float() + self.config.epsilon))

    @torch.no_grad()
    def _maintain(self, z: Tensor) -> None:
        self.batches_seen += 1
        n = int(self.batches_seen)
        c = self.config
        if c.project_every and n % c.project_every == 0:
            patches = z.detach().permute(0, 2, 3, 1).reshape(-1, z.shape[1])
            self.prototypes.copy_(patches[torch.cdist(self.prototypes, patches).argmin(dim=1)])
        if c.restart_every and n % c.restart_every == 0:
            s = self._read_out(patch_prototype_distances(z, self.prototypes))
            redundant = redundant_prototypes(s, c.restart_correlation)
            if redundant.any():
                keep = self.prototypes[~redundant]
                self.prototypes[redundant] = farthest_point_patches(z, int(redundant.sum()), keep=keep)
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(self.prototypes.data, src=0)

    @torch.no_grad()
    def _place_on_patches(self, z: Tensor) -> None:
        self.prototypes.copy_(farthest_point_patches(z, self.num_prototypes))
        if dist.is_available() and dist.is_initialized():  # every DDP rank starts from rank 0's batch
            dist.broadcast(self.prototypes.data, src=0)
        self.initialised.fill_(True)

    def aux_loss(self) -> Tensor | None:
        c = self.config
        terms = []
        if c.distinct_weight:
            terms.append(c.distinct_weight * distinct_loss(self.prototypes, c.distinct_margin))
        if c.decorrelation_weight and self._last_s is not None and len(self._last_s) > 1:
            terms.append(c.decorrelation_weight * correlation_penalty(self._last_s))
        return sum(terms) if terms else None


class CosinePrototypes(PrototypeLayer):
    """Activation = the best cosine similarity between any patch and the prototype, in [-1, 1].

    The returned maps are cosine *distances* (1 - cos), so that for every prototype layer a small
    map value means "this patch looks like the prototype".
    """

    @dataclass
    class Config:
        num_prototypes: int = 100

        def __post_init__(self) -> None:
            at_least(1, num_prototypes=self.num_prototypes)

    presets = {"test": {"num_prototypes": 6}}

    def __init__(self, config: Config, *, feature_dim: int) -> None:
        super().__init__()
        self.config = config
        self.num_prototypes = config.num_prototypes
        self.prototypes = nn.Parameter(torch.randn(config.num_prototypes, feature_dim))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        with torch.autocast(z.device.type, enabled=False):
            unit = F.normalize(z.float(), dim=1)
            cosine = torch.einsum("bdhw,md->bmhw", unit, F.normalize(self.prototypes, dim=1))
        return cosine.flatten(2).max(dim=2).values, 1 - cosine

    def patch_activations(self, maps: Tensor) -> Tensor:
        """The cosine similarity of every patch (1 - its distance): its maximum over patches is ``s``."""
        return 1 - maps


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.prototype_layer.add("log-l2", LogL2Prototypes)
    registry.prototype_layer.add("cosine", CosinePrototypes)
