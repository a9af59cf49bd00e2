"""Samplers checked against exact answers: with the *optimal* noise predictor for a known data
distribution, a correct sampler must reproduce that distribution."""

from __future__ import annotations

import pytest
import torch

from protodiff.contracts.sampler import evenly_spaced
from protodiff.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, ScheduleConfig, denoising_loss
from protodiff.testing import gaussian_eps_oracle as gaussian_oracle


@pytest.fixture
def schedule() -> NoiseSchedule:
    return NoiseSchedule(ScheduleConfig(timesteps=1000))


def test_linear_schedule_matches_ddpm(schedule):
    assert schedule.betas[0].item() == pytest.approx(1e-4)
    assert schedule.betas[-1].item() == pytest.approx(0.02)
    assert schedule.alphas_cumprod[-1].item() < 1e-4  # x_T is essentially pure noise


def test_cosine_schedule_is_monotone_and_ends_near_zero():
    s = NoiseSchedule(ScheduleConfig(timesteps=1000, schedule="cosine"))
    assert torch.all(s.alphas_cumprod[1:] < s.alphas_cumprod[:-1])
    assert s.alphas_cumprod[-1].item() < 1e-3


def test_q_sample_has_the_forward_marginal(schedule):
    x0 = torch.full((20000,), 0.7)
    t = torch.full((20000,), 300)
    x_t = schedule.q_sample(x0, t, torch.randn(20000))
    a = schedule.alphas_cumprod[300].item()
    assert x_t.mean().item() == pytest.approx(a**0.5 * 0.7, abs=0.02)
    assert x_t.std().item() == pytest.approx((1 - a) ** 0.5, abs=0.02)


def test_x0_and_eps_conversions_invert_each_other(schedule):
    x0, eps = torch.randn(4, 3, 8, 8), torch.randn(4, 3, 8, 8)
    t = torch.tensor([0, 10, 500, 999])
    x_t = schedule.q_sample(x0, t, eps)
    torch.testing.assert_close(schedule.predict_x0(x_t, t, eps), x0, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(schedule.predict_eps(x_t, t, x0), eps, atol=1e-4, rtol=1e-4)


def test_denoising_loss_is_zero_for_the_true_noise_and_seeded(schedule):
    x0 = torch.randn(8, 1, 4, 4)
    seen = {}

    def recorder(x_t, t):
        seen["t"] = t
        return schedule.predict_eps(x_t, t, x0)

    loss = denoising_loss(recorder, schedule, x0, torch.Generator().manual_seed(3))
    assert loss.item() < 1e-6
    first = seen["t"].clone()
    denoising_loss(recorder, schedule, x0, torch.Generator().manual_seed(3))
    assert torch.equal(first, seen["t"])


@pytest.mark.parametrize(
    "make",
    [
        lambda s: DDIMSampler(DDIMSampler.Config(steps=1000, eta=0.0), schedule=s),
        lambda s: DDIMSampler(DDIMSampler.Config(steps=1000, eta=1.0), schedule=s),
        lambda s: DDPMSampler(DDPMSampler.Config(steps=1000), schedule=s),
        lambda s: DDPMSampler(DDPMSampler.Config(steps=100, variance="large"), schedule=s),
    ],
    ids=["ddim-eta0", "ddim-eta1", "ddpm-1000", "ddpm-100-large"],
)
def test_samplers_reproduce_a_gaussian_data_distribution(schedule, make):
    sampler = make(schedule)
    mean, std = 0.5, 0.3
    generator = torch.Generator().manual_seed(0)
    x_T = torch.randn(20000, generator=generator)
    x0 = sampler.sample(gaussian_oracle(schedule, mean, std), x_T, generator=generator)
    assert x0.mean().item() == pytest.approx(mean, abs=0.01)
    tolerance = 0.02 if not (isinstance(sampler, DDPMSampler) and sampler.config.variance == "large") else 0.05
    assert x0.std().item() == pytest.approx(std, abs=tolerance)


def test_few_step_ddim_converges_to_the_distribution_as_steps_grow(schedule):
    eps_fn = gaussian_oracle(schedule, 0.5, 0.3)
    x_T = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    errors = [
        abs(DDIMSampler(DDIMSampler.Config(steps=n), schedule=schedule).sample(eps_fn, x_T).std().item() - 0.3)
        for n in (10, 50, 200)
    ]
    assert errors[0] > errors[1] > errors[2]


def test_ddim_inversion_round_trip_with_an_oracle(schedule):
    eps_fn = gaussian_oracle(schedule, 0.0, 0.5)
    x0 = torch.randn(256) * 0.5
    errors = {}
    for steps in (100, 1000):
        sampler = DDIMSampler(DDIMSampler.Config(steps=steps), schedule=schedule)
        x_T = sampler.invert(eps_fn, x0)
        assert x_T.std().item() == pytest.approx(1.0, abs=0.1)  # inverted latents look like noise
        errors[steps] = (sampler.sample(eps_fn, x_T) - x0).abs().max().item()
    # Inversion evaluates eps one step early, a first-order error: it shrinks with the step size.
    assert errors[1000] < 0.02 < errors[100]


def test_callback_sees_every_step_in_order(schedule):
    sampler = DDIMSampler(DDIMSampler.Config(steps=10), schedule=schedule)
    infos = []
    x = sampler.sample(gaussian_oracle(schedule, 0.0, 1.0), torch.randn(2, 1, 4, 4), callback=infos.append)
    assert [i.t for i in infos] == sampler.timesteps()
    assert [i.t_next for i in infos] == sampler.timesteps()[1:] + [-1]
    assert infos[0].t == 999 and infos[-1].t == 0
    assert all(i.x_t.shape == i.eps.shape == i.x0_hat.shape == (2, 1, 4, 4) for i in infos)
    assert torch.equal(infos[-1].x_next, x)


def test_custom_timestep_sequences_are_walked_as_given(schedule):
    sampler = DDIMSampler(DDIMSampler.Config(), schedule=schedule)
    visited = []
    sampler.sample(
        gaussian_oracle(schedule, 0.0, 1.0), torch.randn(3), timesteps=[999, 700, 100, 5], callback=lambda i: visited.append(i.t)
    )
    assert visited == [999, 700, 100, 5]


def test_evenly_spaced_includes_both_ends_and_rejects_bad_counts():
    assert evenly_spaced(1000, 1000) == list(range(999, -1, -1))
    seq = evenly_spaced(1000, 50)
    assert seq[0] == 999 and seq[-1] == 0 and len(seq) == 50
    with pytest.raises(ValueError, match="between 1 and 1000"):
        evenly_spaced(1000, 0)


def test_seeded_stochastic_sampling_is_reproducible(schedule):
    sampler = DDPMSampler(DDPMSampler.Config(steps=20), schedule=schedule)
    eps_fn = gaussian_oracle(schedule, 0.0, 1.0)
    runs = [sampler.sample(eps_fn, torch.zeros(5), generator=torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(runs[0], runs[1])


def test_v_prediction_targets_and_conversion_are_consistent():
    s = NoiseSchedule(ScheduleConfig(prediction="v"))
    x0, noise = torch.randn(5, 2, 3, 3), torch.randn(5, 2, 3, 3)
    t = torch.tensor([0, 10, 500, 900, 999])
    x_t = s.q_sample(x0, t, noise)
    v = s.training_target(x0, noise, t)
    torch.testing.assert_close(s.eps_from_prediction(x_t, t, v), noise, atol=1e-5, rtol=1e-5)
    assert denoising_loss(lambda x_t, t: s.training_target(x0, s.predict_eps(x_t, t, x0), t), s, x0).item() < 1e-8
    # Near pure noise an x0 off by 1 moves the v target by ~1, the eps target by only sqrt(a) < 0.01:
    off = torch.tensor([999])
    assert (s.training_target(x0[-1:] + 1, noise[-1:], off) - v[-1:]).abs().mean() > 0.99
    assert (NoiseSchedule().predict_eps(x_t[-1:], 999, x0[-1:] + 1) - noise[-1:]).abs().mean() < 0.01


def test_x0_hat_is_read_from_v_directly_to_float32_precision_near_t_max():
    """At t = 999 of the cosine schedule sqrt(alpha_bar) is 5e-5: x0 read off an eps converted from
    v divides eps's float32 rounding by it; read from v directly it keeps float32 precision."""
    s = NoiseSchedule(ScheduleConfig(schedule="cosine", prediction="v"))
    x0, noise = torch.rand(64, 3, 8, 8, dtype=torch.float64) * 2 - 1, torch.randn(64, 3, 8, 8, dtype=torch.float64)
    t = torch.full((64,), 999)
    x_t, v = s.q_sample(x0, t, noise), s.training_target(x0, noise, t)
    _, direct = s.eps_and_x0(x_t.float(), 999, v.float(), "v")
    through_eps = s.predict_x0(x_t.float(), t, s.eps_from_prediction(x_t.float(), t, v.float()))
    assert (direct.double() - x0).abs().max() < 1e-6
    assert (through_eps.double() - x0).abs().max() > 1e-4  # what the callback's x0_hat used to carry


def test_a_v_predictor_samples_as_its_eps_twin(schedule):
    """Sampler.sample(prediction="v") converts v as the schedule says, and gives what the same
    predictor given as eps gives."""
    eps_fn = gaussian_oracle(schedule, 0.2, 0.4)

    def v_fn(x_t, t):
        eps = eps_fn(x_t, t)
        a = schedule.alpha_bar(t, x_t)
        return a.sqrt() * eps - (1 - a).sqrt() * schedule.predict_x0(x_t, t, eps)

    sampler = DDIMSampler(DDIMSampler.Config(steps=20), schedule=schedule)
    x_T = torch.randn(512, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(sampler.sample(v_fn, x_T, prediction="v"), sampler.sample(eps_fn, x_T))


def test_logit_normal_timesteps_stay_in_range_and_lean_towards_noise():
    from protodiff.diffusion.objective import training_timesteps

    generator = torch.Generator().manual_seed(0)
    uniform = training_timesteps(NoiseSchedule(), 20000, generator, "cpu")
    noisy = training_timesteps(NoiseSchedule(ScheduleConfig(t_sampling="logit-normal", t_mean=1.0)), 20000, generator, "cpu")
    for t in (uniform, noisy):
        assert t.dtype == torch.long and t.min() >= 0 and t.max() <= 999
    assert abs(uniform.float().mean().item() - 499.5) < 10
    # t/T = sigmoid(N(1, 1)): the median is sigmoid(1) = 0.731
    assert abs(noisy.float().median().item() - 731) < 15
    with pytest.raises(ValueError, match="t_std"):
        ScheduleConfig(t_std=0)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_min_snr_weighting_caps_the_clean_steps_and_keeps_the_noisy_ones(prediction):
    from protodiff.diffusion.schedule import NoiseSchedule, ScheduleConfig

    schedule = NoiseSchedule(ScheduleConfig(prediction=prediction, loss_weighting="min-snr", min_snr_gamma=5.0))
    t = torch.tensor([0, 100, 999])
    weight = schedule.loss_weight(t)
    snr = schedule.alphas_cumprod[t] / (1 - schedule.alphas_cumprod[t])
    expected = snr.clamp(max=5.0) / (snr if prediction == "eps" else snr + 1)
    torch.testing.assert_close(weight, expected.float())
    assert weight[0] < weight[2] if prediction == "eps" else weight[0] < 0.01
    uniform = NoiseSchedule(ScheduleConfig(prediction=prediction))
    assert torch.equal(uniform.loss_weight(t), torch.ones(3))
