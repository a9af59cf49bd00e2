"""digits: scikit-learn's bundled real digits; also the registration of every paper dataset."""

from __future__ import annotations

import re

import pytest
import torch
from click.testing import CliRunner
from sklearn.datasets import load_digits

from protodiff._registry.manager import registries
from protodiff.cli import main
from protodiff.data.digits import CLASSES, NUM_TRAIN, Digits


def test_every_paper_dataset_is_registered_by_the_module_that_defines_it():
    for name in ("fmnist", "cifar10", "celeba", "ffhq", "chexpert", "digits"):
        source = registries().dataset.get(name)
        assert source.__module__ == f"protodiff.data.{name}"
        assert registries().dataset.entry(name).plugin == "core"


def test_fixed_split_labels_and_pixels():
    bunch = load_digits()
    train, test = Digits(Digits.Config()).open("train"), Digits(Digits.Config()).open("test")
    assert (len(train), len(test)) == (NUM_TRAIN, 1797 - NUM_TRAIN)
    assert train.labels.tolist() == bunch.target[:NUM_TRAIN].tolist()
    assert test.labels.tolist() == bunch.target[NUM_TRAIN:].tolist()
    assert train.attribute_names == list(CLASSES) and torch.equal(test.attributes().argmax(1), test.labels)
    native = Digits(Digits.Config(image_size=8)).open("test")[5][0]
    assert torch.allclose(native[0], torch.from_numpy(bunch.images[NUM_TRAIN + 5]).float() / 8 - 1, atol=1 / 127.5)


@pytest.mark.parametrize("size", [16, 32])
def test_upsampled_images_span_minus_one_to_one(size):
    image, attributes = Digits(Digits.Config(image_size=size)).open("train")[0]
    assert image.shape == (1, size, size) and image.min() == -1 and image.max() <= 1 and image.max() > 0.8
    assert attributes.tolist() == [1.0] + [0.0] * 9  # the first image is a 0


def test_limit_keeps_class_labels():
    a = Digits(Digits.Config(limit=50, subset_seed=2)).open("train")
    b = Digits(Digits.Config(limit=50, subset_seed=2)).open("train")
    assert len(a) == 50 and torch.equal(a.labels, b.labels) and torch.equal(a.attributes().argmax(1), a.labels)
    assert not torch.equal(a.labels, Digits(Digits.Config(limit=50, subset_seed=3)).open("train").labels)


def test_check_command_needs_no_root():
    result = CliRunner().invoke(main, ["data", "check", "digits", "--image-size", "16"])
    assert result.exit_code == 0, result.output
    assert "train: 1437 images of 1x16x16\n" in result.output and "test: 360 images of 1x16x16\n" in result.output
    assert re.search(r"\n  digit_0 +0\.\d{3} +0\.\d{3}\n", result.output)
    result = CliRunner().invoke(main, ["data", "check", "digitz"])
    assert result.exit_code == 2 and "unknown dataset 'digitz'; did you mean 'digits'" in result.output
