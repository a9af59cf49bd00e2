from __future__ import annotations

import pytest
import torch

from protodiff.config import parse
from protodiff.nn.unet import UNet


def tiny(**options) -> UNet.Config:
    return parse(UNet.Config, {**UNet.presets["tiny"], **options})


@pytest.mark.parametrize("mode", ["add", "scale", "adagn"])
def test_every_conditioning_mode_uses_the_condition(mode):
    torch.manual_seed(0)
    net = UNet(tiny(), in_channels=3, cond_dim=8, cond_mode=mode)
    for p in net.parameters():  # leave the zero-initialised residual branches: perturb everything
        p.data.add_(0.05 * torch.randn_like(p))
    x, t = torch.randn(2, 3, 16, 16), torch.tensor([3, 500])
    c1, c2 = torch.randn(2, 8), torch.randn(2, 8)
    out = net(x, t, c1)
    assert out.shape == x.shape
    assert not torch.allclose(out, net(x, t, c2))
    out.square().mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_unconditional_unet_has_no_condition_weights():
    net = UNet(tiny(), in_channels=1, cond_dim=0, cond_mode="add")
    assert not any("cond_proj" in name for name, _ in net.named_parameters())
    assert net(torch.randn(2, 1, 16, 16), torch.tensor([0, 999]), None).shape == (2, 1, 16, 16)


def test_config_mode_overrides_the_conditioners_preference():
    net = UNet(tiny(cond_mode="adagn"), in_channels=3, cond_dim=4, cond_mode="add")
    assert net.mid[0].res.cond_mode == "adagn"


def test_paper_preset_matches_the_published_architecture():
    config = parse(UNet.Config, UNet.presets["paper"])
    net = UNet(config, in_channels=3, cond_dim=256, cond_mode="add")
    assert (config.base_channels, config.channel_mult, config.num_res_blocks, config.norm_groups) == (64, (1, 2, 4, 4), 2, 8)
    assert config.dropout == 0.1
    attention = [name for name, m in net.named_modules() if type(m).__name__ == "SelfAttention"]
    assert attention == ["mid.0.attention"]  # only the first bottleneck block attends
    assert net.time_embed.mlp[0].out_features == 256  # time embedding 4 x base, as published
    assert len(net.down) == 4 * 2 + 3 and sum(len(level.blocks) for level in net.up) == 4 * 3


def test_channels_last_does_not_change_the_numbers():
    torch.manual_seed(1)
    a = UNet(tiny(channels_last=True), in_channels=3, cond_dim=4, cond_mode="add")
    b = UNet(tiny(channels_last=False), in_channels=3, cond_dim=4, cond_mode="add")
    b.load_state_dict(a.state_dict())
    for p in a.parameters():
        p.data.add_(0.05)
    b.load_state_dict(a.state_dict())
    x, t, c = torch.randn(2, 3, 16, 16), torch.tensor([1, 2]), torch.randn(2, 4)
    torch.testing.assert_close(a(x, t, c), b(x, t, c), atol=1e-4, rtol=1e-4)


def test_attention_levels_and_bad_sizes():
    net = UNet(tiny(attention_levels=(1,)), in_channels=3, cond_dim=0, cond_mode="add")
    assert any(name.startswith("down.") and name.endswith("attention") for name, _ in net.named_modules())
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 18, 18), torch.tensor([0]), None)
    with pytest.raises(Exception, match="attention_levels: level 5 outside 0..2"):
        tiny(attention_levels=(5,))


def test_norms_and_attention_run_in_fp32_under_bf16_autocast():
    """Autocast leaves only the convolutions and linear layers in bf16: the output stays within
    bf16's rounding of the fp32 forward, and fp32 alone is unchanged by GroupNorm32."""
    from protodiff.nn.blocks import GroupNorm32

    norm, reference = GroupNorm32(4, 8), torch.nn.GroupNorm(4, 8)
    x = torch.randn(2, 8, 5, 5)
    assert torch.equal(norm(x), reference(x))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert norm(x.bfloat16()).dtype == torch.float32
    torch.manual_seed(1)
    unet = UNet(tiny(attention_levels=[1]), in_channels=3, cond_dim=4, cond_mode="adagn")
    for p in unet.parameters():
        p.data.add_(0.05)
    x, t, c = torch.randn(2, 3, 16, 16), torch.tensor([1, 500]), torch.randn(2, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = unet(x, t, c)
    torch.testing.assert_close(low.float(), unet(x, t, c), atol=0.1, rtol=0.05)
