"""An attribute classifier: a small CNN that judges generated or edited images.

Editing a prototype should switch an attribute on; a planted shortcut should show up as a change
in a *different* attribute. Both claims need a judge that reads attributes off images and is
independent of the model being judged: this CNN, trained with binary cross-entropy on a dataset's
train split labels. Its penultimate features also serve as a dataset-specific feature extractor
for Fréchet distances where no Inception weights are available (reported as
``FD_attribute-classifier``, never as FID).

Saved as a directory: ``model.safetensors`` (weights) and ``classifier.json`` (its config and
attribute names), so loading runs no code.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, RandomSampler, Subset
from tqdm.auto import tqdm

from protodiff.checkpoint import read_weights
from protodiff.config import parse
from protodiff.errors import ProtodiffError, UnsupportedData
from protodiff.io import atomic_path
from protodiff.schema import OptionalKey, SchemaError, read_json
from protodiff.training.batches import worker_count

if TYPE_CHECKING:
    from protodiff.contracts.dataset import LabeledImages

WEIGHTS_FILE = "model.safetensors"
META_FILE = "classifier.json"
#: What :meth:`AttributeClassifier.load` reads from ``classifier.json`` (``config`` is then parsed
#: against :class:`ClassifierConfig`, key by key).
META_SCHEMA = {"attribute_names": [str], "in_channels": int, "image_size": int, "config": dict, "trained_steps": OptionalKey(int)}


@dataclass
class ClassifierConfig:
    #: Channels of the conv stages; every stage after the first halves the resolution.
    widths: tuple[int, ...] = (32, 64, 128)
    steps: int = 400
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    #: Seeds the initial weights and the order of training batches.
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.widths or min(self.widths) < 1:
            raise ValueError("widths must be a non-empty list of positive channel counts")
        if self.steps < 1 or self.batch_size < 1 or not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError("steps, batch_size and lr must be positive")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise ValueError(f"weight_decay must be at least 0, got {self.weight_decay}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, {2**32 - 1}], got {self.seed}")


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(min(8, cout), cout), nn.ReLU(inplace=True)
    )


class AttributeClassifier(nn.Module):
    """Images in [-1, 1] -> one logit per attribute.

    Features are the average- and max-pooled last stage: the max keeps a small local mark visible
    however little of the image it covers; the average reads global properties (tone, colour cast).
    """

    def __init__(
        self, attribute_names: list[str], in_channels: int, image_size: int, config: ClassifierConfig | None = None
    ) -> None:
        super().__init__()
        if not attribute_names:
            raise UnsupportedData("an attribute classifier needs a dataset with attribute labels")
        self.attribute_names = list(attribute_names)
        self.in_channels = in_channels
        self.image_size = image_size
        self.config = config or ClassifierConfig()
        self.trained_steps = 0
        widths = self.config.widths
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.body = nn.Sequential(_stage(in_channels, widths[0], 1), *(_stage(a, b, 2) for a, b in zip(widths, widths[1:])))
            self.head = nn.Linear(2 * widths[-1], len(self.attribute_names))

    @classmethod
    def for_dataset(cls, data: LabeledImages, config: ClassifierConfig | None = None) -> AttributeClassifier:
        return cls(data.attribute_names, data.channels, data.image_size, config)

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def _prepare(self, images: Tensor) -> Tensor:
        """Move to this device and resize to the training resolution (edits may come at another)."""
        images = images.to(self.device, torch.float32)
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", antialias=True)
        return images

    def features(self, images: Tensor) -> Tensor:
        """(B, feature_dim) pooled features of images in [-1, 1]."""
        h = self.body(self._prepare(images))
        return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.features(images))

    # -- training -------------------------------------------------------------------------------
    def fit(self, data: LabeledImages, steps: int | None = None, *, num_workers: int = 0, progress: bool = False) -> list[float]:
        """Train on ``data`` with BCE for ``steps`` (default: the config's) steps; returns the losses.

        ``num_workers`` is capped at the CPUs this process may use (as the trainer's loaders are)."""
        if list(data.attribute_names) != self.attribute_names:
            raise ProtodiffError("the dataset's attribute names differ from the classifier's")
        steps = steps or self.config.steps
        generator = torch.Generator().manual_seed(self.config.seed)
        loader = DataLoader(
            data,
            batch_size=self.config.batch_size,
            sampler=RandomSampler(data, replacement=True, num_samples=steps * self.config.batch_size, generator=generator),
            num_workers=worker_count(num_workers),
        )
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.config.lr, total_steps=steps)
        self.train()
        losses = []
        for images, labels in tqdm(loader, total=steps, desc="classifier", disable=not progress, leave=False):
            loss = F.binary_cross_entropy_with_logits(self(images), labels.to(self.device, torch.float32))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        self.eval()
        self.trained_steps += steps
        return losses

    # -- inference ------------------------------------------------------------------------------
    @torch.no_grad()
    def predict_proba(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """(B, A) probability of each attribute for images in [-1, 1], on the CPU."""
        was_training = self.training
        self.eval()
        out = torch.cat([torch.sigmoid(self(chunk)).cpu() for chunk in images.split(batch_size)])
        self.train(was_training)
        return out

    @torch.no_grad()
    def accuracy(self, data: LabeledImages, num: int | None = None, batch_size: int = 256) -> dict[str, float]:
        """Per-attribute accuracy (threshold 0.5) on the first ``num`` items of ``data``."""
        subset = Subset(data, range(min(num or len(data), len(data))))
        correct = torch.zeros(len(self.attribute_names))
        for images, labels in DataLoader(subset, batch_size=batch_size):
            correct += ((self.predict_proba(images) > 0.5).float() == labels).float().sum(dim=0)
        return {name: float(c) / len(subset) for name, c in zip(self.attribute_names, correct)}

    # -- persistence ----------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "attribute_names": self.attribute_names,
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "trained_steps": self.trained_steps,
            "config": {**asdict(self.config), "widths": list(self.config.widths)},
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``directory`` atomically: weights (safetensors) and ``classifier.json``."""
        with atomic_path(directory) as tmp:
            tmp.mkdir()
            save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(tmp / WEIGHTS_FILE))
            (tmp / META_FILE).write_text(json.dumps(self.metadata(), indent=2) + "\n")
        return Path(directory)

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> AttributeClassifier:
        """A saved classifier; a missing or damaged ``classifier.json`` (or one off its schema) is a
        one-line error naming the file and the key."""
        directory = Path(directory)
        if not (directory / META_FILE).is_file():
            raise ProtodiffError(f"{directory}: not an attribute classifier (no {META_FILE})")
        fix = "train it again with `protodiff classifier train`"
        meta = read_json(directory / META_FILE, META_SCHEMA, fix=fix)
        for key in ("in_channels", "image_size"):
            if meta[key] < 1:
                raise SchemaError(f"{directory / META_FILE}: {key}: must be positive, got {meta[key]}; {fix}")
        if not meta["attribute_names"]:
            raise SchemaError(f"{directory / META_FILE}: attribute_names: empty; {fix}")
        config = parse(ClassifierConfig, meta["config"], source=str(directory / META_FILE), where="config")
        args = (meta["attribute_names"], meta["in_channels"], meta["image_size"], config)
        try:  # shapes first, on the meta device: a damaged size allocates nothing
            with torch.device("meta"):
                shapes = {k: tuple(v.shape) for k, v in cls(*args).state_dict().items()}
        except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
            reason = " ".join(str(exc).splitlines()[0].split())[:120] if str(exc) else type(exc).__name__
            raise SchemaError(f"{directory / META_FILE}: its sizes describe no classifier ({reason}); {fix}") from None
        state, _ = read_weights(directory / WEIGHTS_FILE)
        found = {k: tuple(v.shape) for k, v in state.items()}
        if found != shapes:
            key = sorted(set(found) ^ set(shapes)) or [k for k in shapes if found[k] != shapes[k]]
            raise SchemaError(f"{directory / META_FILE}: does not match {WEIGHTS_FILE} (first difference: {key[0]!r}); {fix}")
        classifier = cls(*args)
        classifier.load_state_dict(state, strict=True)
        classifier.trained_steps = meta.get("trained_steps") or 0
        return classifier.to(device).eval()
