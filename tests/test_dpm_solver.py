"""dpm-solver++ against exact answers: with the exact noise predictor of Gaussian data the
probability-flow ODE has a closed-form solution, so a solver's error and order can be measured.
(Parity with diffusers' implementation: tests/test_diffusers_parity.py, when diffusers is installed.)"""

from __future__ import annotations

import pytest
import torch

from protodiff.diffusion import DDIMSampler, DPMSolverPlusPlus, NoiseSchedule, ScheduleConfig
from protodiff.errors import OptionError
from protodiff.testing import gaussian_eps_oracle as gaussian_oracle

MEAN, STD = 0.3, 0.5


def exact_solution(schedule: NoiseSchedule, x_T: torch.Tensor) -> torch.Tensor:
    """Where the probability-flow ODE takes x_T for data ~ N(MEAN, STD^2): the standardised value
    (x_t - sqrt(a) MEAN) / sqrt(a STD^2 + 1 - a) is constant along it."""
    a = schedule.alphas_cumprod[-1].item()
    return MEAN + STD * (x_T - a**0.5 * MEAN) / (a * STD**2 + 1 - a) ** 0.5


def dpm(schedule: NoiseSchedule, steps: int, order: int = 2, spacing: str = "logsnr") -> DPMSolverPlusPlus:
    return DPMSolverPlusPlus(DPMSolverPlusPlus.Config(steps=steps, order=order, spacing=spacing), schedule=schedule)


@pytest.fixture
def schedule() -> NoiseSchedule:
    return NoiseSchedule(ScheduleConfig(timesteps=1000))


@pytest.fixture
def x_T() -> torch.Tensor:
    return torch.randn(4096, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def test_linspace_timesteps_follow_diffusers_default_spacing(schedule):
    assert dpm(schedule, 10, spacing="linspace").timesteps() == [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]
    assert dpm(schedule, 1, spacing="linspace").timesteps() == [999]
    assert dpm(schedule, 1000, spacing="linspace").timesteps() == list(range(999, 0, -1))  # repeats dropped
    with pytest.raises(ValueError, match="steps must be at least 1, got 0"):  # refused as an option
        dpm(schedule, 0)
    with pytest.raises(OptionError, match=r"between 1 and 1000 \(the schedule's timesteps\), got 1001"):  # by the model
        dpm(schedule, 1001).timesteps()


def test_logsnr_timesteps_are_uniform_in_lambda_from_t_max_to_0(schedule):
    steps = dpm(schedule, 20).timesteps()
    assert steps[0] == 999 and steps[-1] == 0 and len(steps) == 20 and dpm(schedule, 1).timesteps() == [999]
    a = schedule.alphas_cumprod[steps]
    gaps = (0.5 * (a / (1 - a)).log()).diff()[:15]  # the last few are bent by rounding t near 0
    assert gaps.min() > 0.95 * gaps.mean() and gaps.max() < 1.05 * gaps.mean()


def test_first_order_is_ddim_on_the_same_timesteps(schedule, x_T):
    eps_fn = gaussian_oracle(schedule, MEAN, STD)
    solver = dpm(schedule, 10, order=1)  # on logsnr timesteps: DDIM walks whatever it is given
    ddim = DDIMSampler(DDIMSampler.Config(), schedule=schedule)
    torch.testing.assert_close(solver.sample(eps_fn, x_T), ddim.sample(eps_fn, x_T, timesteps=solver.timesteps()))


def test_second_order_is_far_closer_to_the_ode_solution_than_ddim(schedule, x_T):
    eps_fn = gaussian_oracle(schedule, MEAN, STD)
    exact = exact_solution(schedule, x_T)
    ddim = DDIMSampler(DDIMSampler.Config(), schedule=schedule)
    errors = {n: (dpm(schedule, n).sample(eps_fn, x_T) - exact).abs().max().item() for n in (20, 50, 250)}
    ddim_50 = (ddim.sample(eps_fn, x_T, timesteps=dpm(schedule, 50).timesteps()) - exact).abs().max().item()
    assert errors[50] < ddim_50 / 10
    # second order: the error falls roughly as steps^-2 (x5 steps: ~x25; here x5.4)
    assert errors[250] < errors[50] / 4 < errors[20] / 4


def test_a_walk_forgets_the_previous_one_and_may_be_nested(schedule, x_T):
    """The multistep history lives in the walk: sampling twice, or starting a walk from inside
    another walk's callback (as an analysis tool might), gives the same numbers."""
    eps_fn = gaussian_oracle(schedule, MEAN, STD)
    solver = dpm(schedule, 8, order=3)
    first = solver.sample(eps_fn, x_T)
    inner = []
    again = solver.sample(eps_fn, x_T, callback=lambda info: inner.append(solver.sample(eps_fn, x_T[:4])))
    assert torch.equal(first, again)
    assert all(torch.equal(x, first[:4]) for x in inner)


def test_callback_sees_every_step_with_x0_hat(schedule):
    solver = dpm(schedule, 6)
    infos = []
    x = solver.sample(gaussian_oracle(schedule, MEAN, STD), torch.randn(2, 1, 4, 4), callback=infos.append)
    assert [i.t for i in infos] == solver.timesteps() and infos[-1].t_next == -1
    torch.testing.assert_close(infos[-1].x_next, infos[-1].x0_hat)  # the last step lands on the x0 estimate
    assert torch.equal(x, infos[-1].x_next)


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_inversion_round_trip_is_far_tighter_than_ddim(schedule, prediction):
    """x0 -> x_T -> x0 with the exact predictor (as eps or as v): the multistep solver walked up and
    down the same timesteps returns the data >10x closer than DDIM inversion does."""
    eps_fn = gaussian_oracle(schedule, 0.0, STD)
    net_fn = eps_fn
    if prediction == "v":  # the same predictor, parameterised as v = sqrt(a) eps - sqrt(1-a) x0

        def net_fn(x_t, t):
            eps = eps_fn(x_t, t)
            a = schedule.alpha_bar(t, x_t)
            return a.sqrt() * eps - (1 - a).sqrt() * (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    x0 = torch.randn(1024, dtype=torch.float64, generator=torch.Generator().manual_seed(1)) * STD
    errors = {}
    for name, sampler in (("dpm", dpm(schedule, 50)), ("ddim", DDIMSampler(DDIMSampler.Config(steps=50), schedule=schedule))):
        x_T = sampler.invert(net_fn, x0, prediction=prediction)
        assert x_T.std().item() == pytest.approx(1.0, abs=0.1)  # inverted latents look like noise
        errors[name] = (sampler.sample(net_fn, x_T, prediction=prediction) - x0).abs().max().item()
    assert errors["dpm"] < errors["ddim"] / 10 and errors["dpm"] < 0.01


def test_order_is_validated():
    from protodiff.config import ComponentSpec
    from protodiff.errors import ConfigError

    with pytest.raises(ConfigError, match=r"order: expected one of 1, 2, 3, got 4"):
        ComponentSpec("sampler", "dpm-solver++", raw={"order": 4}).build(schedule=NoiseSchedule())
