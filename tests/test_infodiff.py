"""The InfoDiffusion plugin: its regularisers against direct computations, the objective the
published code trains for each weight setting, and its N(0, I) prior."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from protodiff.config import ComponentSpec
from protodiff.nn.blocks import ResBlock
from protodiff_infodiff.regularisers import gaussian_kl, mmd


def infodiff(preset: str | None = "test", **options):
    return ComponentSpec("conditioner", "infodiff", preset, raw=options).build(in_channels=3, image_size=32)


def direct_mmd(x: torch.Tensor, y: torch.Tensor) -> float:
    """Every pair, one at a time: k(a, b) = exp(-|a - b|^2 / D^2)."""
    dim = x.shape[1]

    def mean_kernel(a, b):
        return sum(torch.exp(-((u - v) ** 2).sum() / dim**2).item() for u in a for v in b) / (len(a) * len(b))

    return mean_kernel(x, x) + mean_kernel(y, y) - 2 * mean_kernel(x, y)


def test_mmd_is_zero_for_identical_samples_and_grows_with_a_shift():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=generator)
    y = torch.randn(40, 6, generator=generator)
    assert mmd(x, x).item() == pytest.approx(0.0, abs=1e-6)
    shifts = [mmd(x, y + shift).item() for shift in (0.0, 2.0, 4.0)]
    for shift, value in zip((0.0, 2.0, 4.0), shifts):
        assert value == pytest.approx(direct_mmd(x, y + shift), abs=1e-5)
    assert shifts[0] < shifts[1] < shifts[2] and shifts[2] > 0.1


def test_kl_matches_torch_distributions():
    mean, log_var = torch.randn(5, 3), torch.randn(5, 3)
    expected = kl_divergence(Normal(mean, (0.5 * log_var).exp()), Normal(0.0, 1.0)).sum(1).mean()
    torch.testing.assert_close(gaussian_kl(mean, log_var), expected)
    assert gaussian_kl(torch.zeros(4, 3), torch.zeros(4, 3)).item() == 0.0


def test_the_published_defaults():
    cond = ComponentSpec("conditioner", "infodiff").build(in_channels=3, image_size=64)
    config = cond.config
    assert (cond.dim, cond.embed_dim, config.mmd_weight, config.kld_weight) == (32, 256, 0.1, 0.0)
    assert cond.preferred_mode == "adagn" and not cond.variational
    assert (config.encoder.channel_mult, config.encoder.attention_levels, config.encoder.norm_groups) == ((1, 2, 2, 2), (2,), 32)
    assert cond.encoder.head[-1].in_features == 64 * 64  # one channel at full size, flattened
    assert infodiff(dim=256).dim == 256  # the latent size of the published latent evaluations


def test_the_encoder_is_a_whole_unet_without_time_input():
    cond = infodiff()
    assert list(inspect.signature(cond.encoder.forward).parameters) == ["x"]
    blocks = [m for m in cond.encoder.modules() if isinstance(m, ResBlock)]
    assert blocks and all(b.time_proj is None and b.cond_proj is None for b in blocks)
    assert len(cond.encoder.up) == len(cond.config.encoder.channel_mult)


def test_mmd_only_conditions_on_the_deterministic_latent():
    cond = infodiff(kld_weight=0.0, mmd_weight=0.1)
    assert not hasattr(cond, "mean_head")  # the heads exist only for the KL term
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    torch.manual_seed(1)
    condition = cond.encode(x)
    torch.testing.assert_close(condition.vector, cond.encode(x).vector)  # no sampling
    torch.manual_seed(1)  # the MMD's N(0, I) draws come from the global RNG, like dropout
    expected = 0.1 * mmd(torch.randn_like(condition.vector), condition.vector)
    torch.testing.assert_close(condition.aux_loss, expected)


def test_kl_samples_in_training_and_reads_the_mean_otherwise():
    cond = infodiff(kld_weight=0.5, mmd_weight=0.0)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    first, second = cond.encode(x), cond.encode(x)
    assert not torch.allclose(first.vector, second.vector)  # reparameterised samples
    mean = cond.mean_head(cond.encoder(x))
    log_var = first.extras["log_var"]
    torch.testing.assert_close(first.aux_loss, 0.5 * gaussian_kl(mean, log_var))
    cond.eval()
    evaluated = cond.encode(x)
    torch.testing.assert_close(evaluated.vector, mean)
    assert evaluated.aux_loss is None  # a batch statistic of training only


def test_the_diffae_ablation_is_a_configuration():
    cond = infodiff(kld_weight=0.0, mmd_weight=0.0)
    condition = cond.encode(torch.rand(2, 3, 32, 32))
    assert condition.aux_loss is None and not cond.variational


def test_the_standard_normal_prior_measures_its_fit():
    prior = ComponentSpec("latent_prior", "standard-normal").build(dim=8)
    generator = torch.Generator().manual_seed(0)
    matching = prior.fit(torch.randn(500, 8, generator=generator))
    shifted = prior.fit(torch.randn(500, 8, generator=generator) + 3.0)
    assert len(matching) == 1 and matching[0] < 0.01 < shifted[0]
    a = prior.sample(6, generator=torch.Generator().manual_seed(2))
    assert a.shape == (6, 8) and torch.equal(a, prior.sample(6, generator=torch.Generator().manual_seed(2)))


def test_the_regularisers_stay_float32_under_autocast():
    cond = infodiff(kld_weight=0.5, mmd_weight=0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        condition = cond.encode(torch.rand(2, 3, 32, 32))
    assert condition.vector.dtype == torch.bfloat16 and condition.aux_loss.dtype == torch.float32
