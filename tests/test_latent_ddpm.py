"""The latent prior learns a distribution of condition vectors, and plugs into sampling."""

from __future__ import annotations

import torch

from protodiff.config import ComponentSpec


def test_latent_ddpm_learns_a_correlated_gaussian():
    generator = torch.Generator().manual_seed(0)
    mixing = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 0.3]])
    data = torch.randn(1000, 3, generator=generator) @ mixing.T + torch.tensor([2.0, -1.0, 5.0])
    prior = ComponentSpec(
        "latent_prior", "latent-ddpm", raw={"width": 64, "depth": 3, "epochs": 60, "batch_size": 256, "lr": 3e-3}
    ).build(dim=3)
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


def test_the_diffae_preset_is_its_latent_ddim():
    prior = ComponentSpec("latent_prior", "latent-ddpm", "diffae").build(dim=512)
    config = prior.config
    assert (config.width, config.depth, config.timesteps, config.loss, config.time_mode) == (2048, 9, 1000, "l1", "scale")
    torch.testing.assert_close(prior.schedule.betas, torch.full((1000,), 0.008, dtype=torch.float64))  # 'const0.008'
    assert len(prior.net.layers) + 1 == 10  # DiffAE's 10 layers count the output layer


def test_l1_loss_and_scaled_time_learn_the_distribution_too():
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(1000, 2, generator=generator) * torch.tensor([0.5, 2.0]) + torch.tensor([3.0, -1.0])
    options = {"width": 64, "depth": 3, "epochs": 60, "batch_size": 256, "lr": 3e-3, "loss": "l1", "time_mode": "scale"}
    prior = ComponentSpec("latent_prior", "latent-ddpm", raw=options).build(dim=2)
    history = prior.fit(data, generator=torch.Generator().manual_seed(1))
    assert history[-1] < 0.8 * history[0]
    samples = prior.sample(2000, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(samples.mean(0), data.mean(0), atol=0.2, rtol=0)
    torch.testing.assert_close(samples.std(0), data.std(0), atol=0.2, rtol=0.15)


def test_the_loss_is_the_configured_distance():
    batch = torch.randn(8, 3)
    for loss, distance in (("mse", lambda e: e.square().mean()), ("l1", lambda e: e.abs().mean())):
        prior = ComponentSpec("latent_prior", "latent-ddpm", "test", raw={"loss": loss}).build(dim=3)
        for p in prior.net.out.parameters():  # the output layer starts at zero, i.e. eps_hat = 0
            assert not p.any()
        noise = torch.randn(batch.shape, generator=_after_steps(torch.Generator().manual_seed(5), len(batch), 100))
        value = prior.loss(batch, torch.Generator().manual_seed(5))
        torch.testing.assert_close(value, distance(noise))  # eps_hat = 0: the loss is the distance of eps to 0


def _after_steps(generator: torch.Generator, n: int, timesteps: int) -> torch.Generator:
    torch.randint(0, timesteps, (n,), generator=generator)
    return generator


def test_whitening_models_a_code_that_does_not_fill_its_space():
    """A 12-d code of rank 2 (an encoder narrower than its code): whitened, the prior models the two
    directions the codes vary in, and its samples stay in their plane with their spread."""
    generator = torch.Generator().manual_seed(0)
    plane, offset = torch.randn(2, 12, generator=generator), torch.randn(12, generator=generator)
    coords = torch.randn(1000, 2, generator=generator) * torch.tensor([2.0, 0.5])
    data = coords @ plane + offset
    options = {"width": 64, "depth": 3, "epochs": 60, "batch_size": 256, "lr": 3e-3, "normalise": "whiten"}
    prior = ComponentSpec("latent_prior", "latent-ddpm", raw=options).build(dim=12)
    prior.fit(data, generator=torch.Generator().manual_seed(1))
    assert prior.rank == 2
    samples = prior.sample(2000, generator=torch.Generator().manual_seed(2))
    found = torch.linalg.lstsq(plane.T, (samples - offset).T).solution.T
    assert (samples - offset - found @ plane).abs().max() < 1e-3
    torch.testing.assert_close(found.mean(0), coords.mean(0), atol=0.2, rtol=0)
    torch.testing.assert_close(found.std(0), coords.std(0), atol=0.2, rtol=0.15)

    reloaded = ComponentSpec("latent_prior", "latent-ddpm", raw=options).build(dim=12)
    reloaded.load_state_dict(prior.state_dict())
    assert reloaded.rank == 2
    assert torch.equal(
        reloaded.sample(4, generator=torch.Generator().manual_seed(3)),
        prior.sample(4, generator=torch.Generator().manual_seed(3)),
    )
