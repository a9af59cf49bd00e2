"""Prototype encoders: shapes as published, and receptive fields checked by brute force."""

from __future__ import annotations

import pytest
import torch

from protodiff._registry.manager import registries
from protodiff.config import ComponentSpec
from protodiff.errors import ConfigError, ProtodiffError


def encoder(name: str, image_size: int, in_channels: int = 3, **options):
    preset = options.pop("preset", None)
    return ComponentSpec("encoder", name, preset, raw=options).build(in_channels=in_channels, image_size=image_size)


def gradient_support(enc, i: int, j: int, in_channels: int, size: int, trials: int = 4) -> tuple[int, int, int, int]:
    """Bounding box of the input pixels whose gradient to z[:, :, i, j] is ever non-zero."""
    support = torch.zeros(size, size, dtype=torch.bool)
    for seed in range(trials):
        x = torch.randn(1, in_channels, size, size, generator=torch.Generator().manual_seed(seed), requires_grad=True)
        enc(x)[0, :, i, j].sum().backward()
        support |= x.grad[0].abs().sum(0) > 0
    rows, cols = support.nonzero(as_tuple=True)
    return rows.min().item(), cols.min().item(), rows.max().item() + 1, cols.max().item() + 1


@pytest.mark.parametrize(
    ("preset", "size", "channels", "feature_side", "field"),
    [("published", 32, 3, 10, 15), ("published", 64, 3, 26, 15), ("chexpert-224", 224, 1, 43, 61)],
)
def test_published_geometry_and_exact_receptive_fields(preset, size, channels, feature_side, field):
    torch.manual_seed(0)
    enc = encoder("patronus-conv", size, channels, preset=preset)
    z = enc(torch.zeros(1, channels, size, size))
    assert z.shape == (1, 128, feature_side, feature_side)
    interior = enc.receptive_field(feature_side // 2, feature_side // 2)
    assert interior.height == interior.width == field
    for i, j in [(0, 0), (feature_side // 2, 1), (feature_side - 1, feature_side - 1), (3, feature_side - 2)]:
        box = enc.receptive_field(i, j)
        assert (box.top, box.left, box.bottom, box.right) == gradient_support(enc, i, j, channels, size), (i, j)


def test_64px_boxes_follow_the_published_patch_layout():
    # Published viz crops [2i, 2i+14]; the exact support is one pixel wider at the top/left.
    enc = encoder("patronus-conv", 64)
    box = enc.receptive_field(5, 7)
    assert (box.top, box.left, box.bottom, box.right) == (9, 13, 24, 28)


def test_encoder_init_is_the_published_normal():
    enc = encoder("patronus-conv", 32)
    weights = torch.cat([m.weight.flatten() for m in enc.modules() if isinstance(m, torch.nn.Conv2d)])
    assert weights.std().item() == pytest.approx(0.1, rel=0.05)


def test_too_small_inputs_are_refused():
    with pytest.raises(ConfigError, match="leaves no feature map"):
        encoder("patronus-conv", 8, preset="chexpert-224")


def test_timm_backbones_are_encoders_with_measured_receptive_fields():
    enc = encoder("timm-resnet18", 64, feature_level=2)
    z = enc(torch.randn(2, 3, 64, 64))
    assert z.shape == (2, enc.out_channels, 8, 8) and enc.out_channels == 128
    box = enc.receptive_field(4, 4)
    assert box.top < 4 * 8 < box.bottom and box.left < 4 * 8 < box.right  # centred around the position
    assert box == enc.receptive_field(4, 4)


def test_timm_weights_come_from_a_local_file(tmp_path):
    import timm
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    enc = encoder("timm-resnet18", 32, weights=str(path))
    assert torch.equal(enc.backbone.conv1.weight, source.conv1.weight)
    with pytest.raises(ProtodiffError, match=r"weights file .*missing.safetensors not found; download the checkpoint"):
        encoder("timm-resnet18", 32, weights=str(tmp_path / "missing.safetensors"))


def test_unknown_timm_models_are_named_with_suggestions():
    with pytest.raises(ProtodiffError, match=r"timm has no model 'resnet181'.*close: .*resnet18"):
        registries().encoder.get("timm-resnet181")


def test_sigmoid_output_keeps_features_in_the_prototype_box():
    enc = encoder("patronus-conv", 32, output="sigmoid")
    z = enc(torch.randn(2, 3, 32, 32) * 10)
    assert z.min() >= 0 and z.max() <= 1
    assert isinstance(enc.features[-1], torch.nn.Sigmoid) and len(enc.features) == 8
