"""The DiffAE plugin against the published architecture, and its editing method on known directions."""

from __future__ import annotations

import inspect
import math
from dataclasses import replace

import pytest
import torch
from conftest import TINY_OVERRIDES
from torch import nn

from protodiff.config import ComponentSpec
from protodiff.errors import ProtodiffError, UnsupportedModel
from protodiff.experiment import load_experiment
from protodiff.model import ConditionedDiffusion
from protodiff.nn.blocks import GroupNorm32, ResBlock
from protodiff_diffae.editing import AttributeDirections, AttributeEditExplainer
from protodiff_patronus.conditioner import nearest_patches


def diffae(**options):
    return ComponentSpec("conditioner", "diffae", raw=options).build(in_channels=3, image_size=64)


def test_the_published_semantic_encoder():
    cond = diffae()
    assert cond.dim == cond.embed_dim == 512 and cond.preferred_mode == "scale" and cond.default_prior == "latent-ddpm"
    shape = cond.config.encoder
    assert (shape.base_channels, shape.channel_mult, shape.num_res_blocks, shape.norm_groups) == (64, (1, 2, 4, 8, 8), 2, 32)
    # a half UNet: down and middle only; attention at 16 px (level 2 of a 64 px input) and in the middle
    assert not hasattr(cond.encoder, "up")
    attention = sorted({name.split(".attention")[0] for name, _ in cond.encoder.named_modules() if ".attention" in name})
    assert attention == ["down.6", "down.7", "mid.0"]
    # the head: GroupNorm, SiLU, average pool, 1x1 convolution to 512
    assert [type(m) for m in cond.encoder.head] == [GroupNorm32, nn.SiLU, nn.AdaptiveAvgPool2d, nn.Conv2d, nn.Flatten]
    assert cond.encoder.head[3].kernel_size == (1, 1) and cond.encoder.head[3].out_channels == 512


def test_the_encoder_has_no_time_input_and_encodes_each_image_alone():
    cond = ComponentSpec("conditioner", "diffae", "test").build(in_channels=3, image_size=32)
    assert list(inspect.signature(cond.encoder.forward).parameters) == ["x"]
    blocks = [m for m in cond.encoder.modules() if isinstance(m, ResBlock)]
    assert blocks and all(b.time_proj is None and b.cond_proj is None for b in blocks)
    cond.eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    together = cond.encode(x).vector
    alone = torch.cat([cond.encode(x[i : i + 1]).vector for i in range(3)])
    torch.testing.assert_close(together, alone)


def test_z_sem_is_the_embedding_and_scales_the_denoiser():
    cond = ComponentSpec("conditioner", "diffae", "test").build(in_channels=3, image_size=32)
    z = torch.randn(2, cond.dim)
    assert cond.embed(z) is z  # each block applies its own SiLU and linear layer, as published
    config = load_experiment(
        "ddpm-shapes", [*TINY_OVERRIDES, "model.conditioner={name: diffae, preset: test}", "data.image_size=32"]
    )
    model = ConditionedDiffusion.from_experiment(config)
    block = model.denoiser.mid[0].res
    assert block.cond_mode == "scale" and block.cond_proj.in_features == cond.dim


def test_an_image_size_the_encoder_cannot_halve_is_a_one_line_error():
    with pytest.raises(ProtodiffError, match="divisible by 16"):
        ComponentSpec("conditioner", "diffae").build(in_channels=3, image_size=40)


@pytest.fixture(scope="module")
def tiny_model():
    config = load_experiment(
        "ddpm-shapes", [*TINY_OVERRIDES, "model.conditioner={name: diffae, preset: test}", "data.image_size=32"]
    )
    torch.manual_seed(0)
    model = ConditionedDiffusion.from_experiment(config).eval()
    for p in model.parameters():  # leave the zero-initialised residual branches: z_sem must matter
        p.data.add_(0.02 * torch.randn_like(p))
    return model


def test_ddim_inversion_given_z_sem_reconstructs_the_image(tiny_model):
    """The stochastic subcode: x_T from DDIM inversion gives the image back (the error shrinks as
    1/steps); fresh noise with the same z_sem does not."""
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    sampler = tiny_model.sampler("ddim", steps=100)
    inverted = (tiny_model.reconstruct(x0, sampler=sampler) - x0).abs().mean()
    fresh = (
        (tiny_model.reconstruct(x0, sampler=sampler, invert=False, generator=torch.Generator().manual_seed(0)) - x0).abs().mean()
    )
    assert inverted < 0.03 and inverted < 0.05 * fresh


def test_a_prototype_tool_refuses_a_diffae_model_in_one_line(tiny_model):
    with pytest.raises(UnsupportedModel) as caught:
        nearest_patches(tiny_model, torch.zeros(1, 3, 32, 32))
    message = str(caught.value)
    assert "\n" not in message and "nearest_patches needs a prototype conditioner" in message and "'diffae'" in message


def test_attribute_directions_recover_a_planted_direction():
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor([1.0, 5.0, 0.2, 3.0])
    codes = torch.randn(2000, 4, generator=generator) * scale + 7.0
    truth = torch.tensor([0.0, 1.0, 0.0, 1.0])  # in standardised units: the attribute is z1 + z3 > 0
    standardised = (codes - codes.mean(0)) / codes.std(0)
    labels = torch.stack([(standardised @ truth > 0), (standardised[:, 0] > 0)], dim=1).long()
    directions = AttributeDirections.fit(
        codes, labels, ["planted", "first"], steps=800, generator=torch.Generator().manual_seed(1)
    )
    cosine = directions.direction("planted") @ (truth / truth.norm())
    assert cosine > 0.95
    accuracy = ((directions.logits(codes) > 0).long() == labels).float().mean()
    assert accuracy > 0.95


def test_moving_along_a_direction_is_the_published_step():
    codes = torch.randn(50, 9) * 3 + 1
    labels = (codes[:, :1] > 1).long()
    directions = AttributeDirections.fit(codes, labels, ["a"], steps=100)
    moved = directions.move(codes, "a", 0.3)
    step = (moved - codes) / directions.std  # in the standardised space
    torch.testing.assert_close(step, (0.3 * math.sqrt(9) * directions.direction("a")).expand_as(step))
    assert (directions.logits(moved) > directions.logits(codes)).all()
    with pytest.raises(ProtodiffError, match="no direction for 'b'; known: a"):
        directions.move(codes, "b", 1.0)


def test_the_mean_difference_moves_a_code_by_what_separates_the_groups():
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(4000, 2, generator=generator) > 0.5).long()
    planted = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.5, 0.0]])
    codes = torch.randn(4000, 3, generator=generator) * 0.3 + labels.float() @ planted
    directions = AttributeDirections.fit(codes, labels, ["a", "b"], steps=10)
    torch.testing.assert_close(directions.difference, planted, atol=0.05, rtol=0)
    torch.testing.assert_close(directions.shift(codes, "a", 1.0) - codes, directions.difference[:1].expand_as(codes))
    torch.testing.assert_close(directions.shift(codes, "b", -2.0), codes - 2 * directions.difference[1])
    with pytest.raises(ProtodiffError, match="attribute 'b' is the same on every fitted code"):
        AttributeDirections.fit(codes, torch.stack([labels[:, 0], torch.ones(4000).long()], dim=1), ["a", "b"], steps=1)


def test_diffae_edits_and_prototype_edits_go_through_the_same_call(tiny_model):
    data = tiny_model_data()
    directions = AttributeDirections.for_model(tiny_model, data, limit=64, steps=50)
    assert directions.attribute_names == data.attribute_names and directions.weight.shape == (8, tiny_model.conditioner.dim)
    x0 = torch.stack([data[i][0] for i in range(2)])
    sampler = tiny_model.sampler("ddim", steps=10)
    z = tiny_model.encode(x0).vector
    edited = tiny_model.edit(x0, directions.move(z, "red_square", 1.0), sampler=sampler)
    unedited = tiny_model.edit(x0, z, sampler=sampler)
    assert edited.shape == x0.shape and (edited - unedited).abs().mean() > 1e-3


DDIM_2 = ComponentSpec("sampler", "ddim", raw={"steps": 2})


def test_the_conditional_difference_moves_a_reading_that_changes_with_another_attribute():
    # Attribute a ("dark") changes dimension 0 on images without b ("a mark") and dimension 1 on those
    # with it: the mark is read by another dimension on a dark image. One shift averages the two.
    generator = torch.Generator().manual_seed(0)
    labels = (torch.rand(4000, 3, generator=generator) > 0.5).long()
    a, b, c = labels.float().unbind(dim=1)
    codes = torch.randn(4000, 3, generator=generator) * 0.1
    codes[:, 0] += a * (1 - b)
    codes[:, 1] += a * b + 0.5 * b
    codes[:, 2] += 2 * c  # an attribute that does not interact with a
    directions = AttributeDirections.fit(codes, labels, ["a", "b", "c"], steps=1)
    torch.testing.assert_close(directions.difference[0], torch.tensor([0.5, 0.5, 0.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(directions.given_difference[0], torch.tensor([1.0, 0.0, 0.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(directions.interaction[0, 1], torch.tensor([-1.0, 1.0, 0.0]), atol=0.03, rtol=0)
    torch.testing.assert_close(directions.interaction[0, 2], torch.zeros(3), atol=0.03, rtol=0)
    assert (directions.interaction[0, 0] == 0).all()
    called = torch.tensor([[0, 0, 1], [0, 1, 0], [1, 1, 0]])  # as a judge calls three images
    step = directions.shift_given(codes[:3], called, "a", 1.0) - codes[:3]
    expected = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # the third has a: it stays
    torch.testing.assert_close(step, expected, atol=0.05, rtol=0)
    removed = directions.shift_given(codes[:3], called, "a", -2.0) - codes[:3]  # only the third has a to remove
    torch.testing.assert_close(removed[:2], torch.zeros(2, 3))
    torch.testing.assert_close(removed[2], torch.tensor([0.0, -2.0, 0.0]), atol=0.05, rtol=0)
    with pytest.raises(ProtodiffError, match=r"2 codes and attributes of shape \(2, 2\): one row per code"):
        directions.shift_given(codes[:2], called[:2, :2], "a", 1.0)


def test_a_rare_pair_of_attributes_takes_the_average_difference():
    # b co-occurs with a on fewer than MIN_CELL images: no interaction is fitted from so few.
    from protodiff_diffae.editing import MIN_CELL

    generator = torch.Generator().manual_seed(1)
    a = (torch.rand(2000, generator=generator) > 0.5).long()
    b = torch.zeros(2000, dtype=torch.long)
    b[torch.nonzero(a == 0)[:300, 0]] = 1
    b[torch.nonzero(a == 1)[: MIN_CELL - 1, 0]] = 1
    codes = torch.randn(2000, 2, generator=generator) + 3 * (a * b).float()[:, None]
    directions = AttributeDirections.fit(codes, torch.stack([a, b], dim=1), ["a", "b"], steps=1)
    assert (directions.interaction[0, 1] == 0).all() and (directions.interaction[1, 0] == 0).all()
    b[torch.nonzero(a == 1)[:MIN_CELL, 0]] = 1  # one more: every combination has MIN_CELL images
    directions = AttributeDirections.fit(codes, torch.stack([a, b], dim=1), ["a", "b"], steps=1)
    assert (directions.interaction[0, 1] != 0).all()


def test_attribute_edit_judges_every_edit_like_a_prototype_edit(tiny_model, tmp_path):
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    data = tiny_model_data()
    classifier = AttributeClassifier.for_dataset(data, ClassifierConfig(widths=(4,))).eval()
    images = torch.stack([data[i][0] for i in range(3)])
    config = AttributeEditExplainer.Config(
        attribute=["red_square", "dark_bg"], amount=0.5, fit_images=32, steps=20, sampler=DDIM_2
    )
    explanation = AttributeEditExplainer(config).explain(tiny_model, images, train=data, classifier=classifier)
    change = explanation.tensors["change"]
    assert change.shape == (2, 3, len(data.attribute_names))  # edits x images x judged attributes
    assert explanation.tensors["edited"].shape == (3, 2, *images.shape[1:])
    assert explanation.meta["dimensions"] == ["red_square +0.5", "dark_bg +0.5"]
    assert set(explanation.meta["direction_accuracy"]) == set(data.attribute_names)
    again = AttributeEditExplainer(config).explain(tiny_model, images, train=data, classifier=classifier)
    torch.testing.assert_close(again.tensors["change"], change)  # deterministic
    explanation.save(tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"tensors.safetensors", "meta.json", "edit.png", "effects.png"}


def test_the_conditional_attribute_edit_reads_each_images_attributes_with_the_judge(tiny_model):
    from protodiff.errors import OptionError
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    data = tiny_model_data()
    images = torch.stack([data[i][0] for i in range(3)])
    config = AttributeEditExplainer.Config(attribute=["dark_bg"], direction="conditional", fit_images=64, steps=1, sampler=DDIM_2)
    assert config.amount == 1.0
    with pytest.raises(OptionError, match="^direction=conditional reads each image's other attributes with a judge"):
        AttributeEditExplainer(config).explain(tiny_model, images, train=data)
    classifier = AttributeClassifier.for_dataset(data, ClassifierConfig(widths=(4,))).eval()
    explanation = AttributeEditExplainer(config).explain(tiny_model, images, train=data, classifier=classifier)
    called = (classifier.predict_proba(images) > 0.5).float()
    torch.testing.assert_close(explanation.tensors["called"], called)
    assert explanation.meta["direction"] == "conditional" and explanation.tensors["edited"].shape == (3, 1, *images.shape[1:])
    assert explanation.meta["left_as_they_are"] == {"dark_bg": int(called[:, data.attribute_names.index("dark_bg")].sum())}
    mean = AttributeEditExplainer(replace(config, direction="mean-difference")).explain(
        tiny_model, images, train=data, classifier=classifier
    )
    assert "called" not in mean.tensors and not torch.allclose(mean.tensors["edited"], explanation.tensors["edited"])


def test_attribute_edit_refuses_an_unknown_attribute_in_one_line(tiny_model):
    config = AttributeEditExplainer.Config(attribute=["red_sqare"], fit_images=8, steps=1, sampler=DDIM_2)
    with pytest.raises(ProtodiffError, match="^no direction for 'red_sqare'; known: red_square, "):
        AttributeEditExplainer(config).explain(tiny_model, torch.zeros(1, 3, 32, 32), train=tiny_model_data())


def tiny_model_data():
    return load_experiment("ddpm-shapes", [*TINY_OVERRIDES, "data.image_size=32"]).data.build().open("train")
