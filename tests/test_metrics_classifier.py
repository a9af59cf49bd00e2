"""The attribute classifier: learns shapes' ground-truth attributes quickly, saves and reloads exactly."""

from __future__ import annotations

import pytest
import torch

from protodiff.contracts.dataset import LabeledImages
from protodiff.data.shapes import ATTRIBUTES, Shapes
from protodiff.errors import ProtodiffError
from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

STEPS = 300


class InMemory(LabeledImages):
    """A split rendered once, so training time is spent training (shapes renders on every access)."""

    def __init__(self, split: LabeledImages) -> None:
        super().__init__(split.attribute_names, split.channels, split.image_size)
        self.items = [split[i] for i in range(len(split))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        return self.items[index]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Two intra-op threads on two shared cores slow small convolutions down tenfold under load."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def shapes():
    source = Shapes(Shapes.Config(image_size=16, num_train=2000, num_test=400))
    return InMemory(source.open("train")), InMemory(source.open("test"))


@pytest.fixture(scope="module")
def quick(shapes):
    """A classifier after a few steps: enough for shapes, persistence and determinism."""
    classifier = AttributeClassifier.for_dataset(shapes[0], ClassifierConfig(steps=3, seed=0))
    classifier.fit(shapes[0])
    return classifier


@pytest.mark.slow
def test_reaches_high_held_out_accuracy_on_every_attribute(shapes) -> None:
    classifier = AttributeClassifier.for_dataset(shapes[0], ClassifierConfig(steps=STEPS, seed=0))
    losses = classifier.fit(shapes[0])
    assert len(losses) == STEPS and losses[-1] < losses[0] / 5
    accuracy = classifier.accuracy(shapes[1])
    assert list(accuracy) == list(ATTRIBUTES)
    print("held-out accuracy:", {name: round(acc, 3) for name, acc in accuracy.items()})
    assert min(accuracy.values()) > 0.9, accuracy


def test_predict_proba_shape_range_and_resizing(shapes, quick) -> None:
    classifier = quick
    images = torch.stack([shapes[1][i][0] for i in range(8)])
    p = classifier.predict_proba(images)
    assert p.shape == (8, len(ATTRIBUTES)) and ((p >= 0) & (p <= 1)).all()
    bigger = torch.nn.functional.interpolate(images, scale_factor=2, mode="nearest")
    assert classifier.predict_proba(bigger).shape == p.shape


def test_save_load_round_trip(tmp_path, shapes, quick) -> None:
    classifier = quick
    classifier.save(tmp_path / "clf")
    loaded = AttributeClassifier.load(tmp_path / "clf")
    assert loaded.attribute_names == list(ATTRIBUTES) and loaded.trained_steps == 3
    assert loaded.config == classifier.config
    images = torch.stack([shapes[1][i][0] for i in range(8)])
    assert torch.equal(loaded.predict_proba(images), classifier.predict_proba(images))


def test_same_seed_same_weights(shapes, quick) -> None:
    again = AttributeClassifier.for_dataset(shapes[0], ClassifierConfig(steps=3, seed=0))
    again.fit(shapes[0])
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in quick.state_dict().items())
    seed0, seed1 = (AttributeClassifier.for_dataset(shapes[0], ClassifierConfig(seed=s)) for s in (0, 1))
    assert not torch.equal(seed0.head.weight, seed1.head.weight)


def test_refuses_unlabelled_data_and_bad_directories(tmp_path) -> None:
    with pytest.raises(ProtodiffError, match="attribute labels"):
        AttributeClassifier([], 3, 16)
    with pytest.raises(ProtodiffError, match="not an attribute classifier"):
        AttributeClassifier.load(tmp_path)
