"""The latent prior learns a distribution of condition vectors, and plugs into sampling."""

from __future__ import annotations

import torch

from protodiff.config import ComponentSpec


def test_latent_ddpm_learns_a_correlated_gaussian():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 0.3]])
    data = torch.randn(1000, 3, generator=generator) @ mixing.T + torch.tensor([2.0, -1.0, 5.0])
    prior = ComponentSpec("latent_prior", "latent-ddpm", raw={"width": 64, "depth": 3, "epochs": 60, "batch_size": 256, "lr": 3e-3}).build(dim=3)
    history = prior.fit(data, generator=torch.Generator().manual_seed(1))
    assert history[-1] < 0.7 * history[0]
    samples = prior.sample(2000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(samples.mean(0), data.mean(0), atol=0.15, rtol=0)
    torch.testing.assert_close(samples.std(0), data.std(0), atol=0.15, rtol=0.15)
    corr = torch.corrcoef(samples.T)[0, 1].item()
    assert abs(corr - torch.corrcoef(data.T)[0, 1].item()) < 0.15


def test_sampling_is_seeded_and_ddim_steps_are_an_option():
    data = torch.randn(64, 4)
    prior = ComponentSpec("latent_prior", "latent-ddpm", "test", raw={"sample_steps": 10}).build(dim=4)
    prior.fit(data)
    a = prior.sample(5, generator=torch.Generator().manual_seed(0))
    b = prior.sample(5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.shape == (5, 4)
