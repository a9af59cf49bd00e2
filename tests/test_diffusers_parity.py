"""protodiff's samplers against diffusers' schedulers on the same schedule and the same model
outputs, step by step. diffusers is in the ``dev`` extra (``pip install -e '.[dev]'``, what CI
installs); an environment without it skips these tests, except under CI (``CI`` set), where the
parity the fast sampler's correctness rests on must be checked, so a missing diffusers fails."""

from __future__ import annotations

import importlib
import os

import pytest
import torch

from protodiff.diffusion import DDIMSampler, DPMSolverPlusPlus, NoiseSchedule, ScheduleConfig

diffusers = importlib.import_module("diffusers") if os.environ.get("CI") else pytest.importorskip("diffusers")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # diffusers' own, under numpy 2

BETAS = {"linear": "linear", "cosine": "squaredcos_cap_v2"}  # diffusers' names for protodiff's schedules
PREDICTION = {"eps": "epsilon", "v": "v_prediction"}
SHAPE = (8, 3, 8, 8)


def fake_net(schedule: NoiseSchedule, prediction: str, dtype: torch.dtype = torch.float32):
    """A deterministic stand-in for a trained denoiser: it guesses a bounded clean image, a
    nonlinear function of x_t and t, and reports it as eps or v (as a real network would),
    computed in float64 and rounded to ``dtype``, so that its output shares no rounding with
    either implementation's table."""

    def net(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = x_t.double()
        a = schedule.alphas_cumprod[t].view(-1, 1, 1, 1)
        s = (t.double() / schedule.num_timesteps).view(-1, 1, 1, 1)
        x0 = torch.tanh(x * (1.5 - s) + 0.3 * torch.sin(3 * x.roll(1, -1)) + s)
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        return (eps if prediction == "eps" else a.sqrt() * eps - (1 - a).sqrt() * x0).to(dtype)

    return net


def diffusers_walk(scheduler, net, x: torch.Tensor) -> list[torch.Tensor]:
    """Every sample diffusers' scheduler produces along its own timesteps."""
    out = []
    for t in scheduler.timesteps:
        x = scheduler.step(net(x, t.expand(x.shape[0])), t, x).prev_sample
        out.append(x)
    return out


def dpm_pair(schedule_name: str, prediction: str, order: int, steps: int, spacing: str = "linspace"):
    """protodiff's solver and diffusers' scheduler, the latter set to protodiff's timesteps."""
    schedule = NoiseSchedule(ScheduleConfig(schedule=schedule_name, prediction=prediction))
    ours = DPMSolverPlusPlus(DPMSolverPlusPlus.Config(steps=steps, order=order, spacing=spacing), schedule=schedule)
    theirs = diffusers.DPMSolverMultistepScheduler(
        beta_schedule=BETAS[schedule_name], solver_order=order, prediction_type=PREDICTION[prediction]
    )
    theirs.set_timesteps(timesteps=ours.timesteps())
    return schedule, ours, theirs


def diffusers_timesteps(steps: int, **spacing: bool) -> list[int]:
    scheduler = diffusers.DPMSolverMultistepScheduler(**spacing)
    scheduler.set_timesteps(steps)
    return scheduler.timesteps.tolist()


@pytest.mark.parametrize("steps", [5, 10, 20, 50])
@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize(("schedule_name", "prediction"), [("linear", "eps"), ("linear", "v"), ("cosine", "v")])
@pytest.mark.parametrize("spacing", ["logsnr", "linspace"])
def test_dpm_solver_matches_diffusers_step_by_step(spacing, schedule_name, prediction, order, steps):
    """Every step within 1e-4 (values ~1): float32 work through diffusers' float32 table, whose
    1 - alpha_bar_0 is off by 5e-5 relative and whose lambdas lose digits between close steps;
    the final image of each is as close to the same walk in float64."""
    schedule, ours, theirs = dpm_pair(schedule_name, prediction, order, steps, spacing)
    net = fake_net(schedule, prediction)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    walk = []
    ours.sample(net, x_T, prediction=prediction, callback=lambda info: walk.append(info.x_next))
    reference = diffusers_walk(theirs, net, x_T)
    for index, (mine, other) in enumerate(zip(walk, reference, strict=True)):
        torch.testing.assert_close(mine, other, atol=1e-4, rtol=1e-4, msg=lambda m, i=index: f"step {i}: {m}")
    exact = ours.sample(fake_net(schedule, prediction, torch.float64), x_T.double(), prediction=prediction)
    for final in (walk[-1], reference[-1]):
        torch.testing.assert_close(final.double(), exact, atol=1e-4, rtol=0)


@pytest.mark.parametrize("steps", [1, 5, 10, 20, 25])
def test_timesteps_are_diffusers_own(steps):
    """``linspace`` is diffusers' default spacing; ``logsnr`` its ``use_lu_lambdas`` (here to 25
    steps: beyond, its float32 table moves an occasional t by one, and it repeats some t near 0,
    which protodiff drops). diffusers then steps with the
    unrounded lambdas while the denoiser is told the rounded t; protodiff steps with the table's
    values at the t the denoiser is told (so the step-by-step test sets diffusers to those t)."""
    schedule = NoiseSchedule()
    linspace = DPMSolverPlusPlus(DPMSolverPlusPlus.Config(steps=steps, spacing="linspace"), schedule=schedule)
    logsnr = DPMSolverPlusPlus(DPMSolverPlusPlus.Config(steps=steps), schedule=schedule)
    assert linspace.timesteps() == diffusers_timesteps(steps)
    assert logsnr.timesteps() == list(dict.fromkeys(diffusers_timesteps(steps, use_lu_lambdas=True)))


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_solver_eps_on_cosine_is_closer_to_float64_than_diffusers(order):
    """At t = 999 of the cosine schedule sqrt(alpha_bar) is 5e-5: an eps network's x0 is known only
    to ~1e-3 in float32, and the two implementations round differently. Against the same solver
    run in float64, protodiff's float64 coefficients land closer than diffusers' float32 table."""
    schedule, ours, theirs = dpm_pair("cosine", "eps", order, 20)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    exact = ours.sample(fake_net(schedule, "eps", torch.float64), x_T.double())
    mine = ours.sample(fake_net(schedule, "eps"), x_T).double()
    reference = diffusers_walk(theirs, fake_net(schedule, "eps"), x_T)[-1].double()
    assert (mine - exact).abs().max() < (reference - exact).abs().max() / 2
    assert (reference - exact).abs().max() < 5e-3


@pytest.mark.parametrize("steps", [10, 50])
def test_ddim_inversion_matches_diffusers_ddim_inverse_scheduler(steps):
    """protodiff's DDIM inversion evaluates eps at the step's target timestep, as diffusers'
    DDIMInverseScheduler does; on its timesteps (``leading`` spacing) the two agree to diffusers'
    float32 table (its 1 - alpha_bar_0 is 1.00005e-4, float64's 1e-4: 5e-5 relative, carried by
    every later step), and protodiff is the closer of the two to the same inversion in float64."""
    schedule = NoiseSchedule()
    theirs = diffusers.DDIMInverseScheduler(beta_schedule="linear", clip_sample=False, set_alpha_to_one=True)
    theirs.set_timesteps(steps)
    ascending = theirs.timesteps.flip(0).tolist()
    ours = DDIMSampler(DDIMSampler.Config(), schedule=schedule)
    x0 = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    walk = []
    ours.invert(fake_net(schedule, "eps"), x0, timesteps=ascending, callback=lambda info: walk.append(info.x_next))
    reference = diffusers_walk(theirs, fake_net(schedule, "eps"), x0)
    for index, (mine, other) in enumerate(zip(walk, reference, strict=True)):
        torch.testing.assert_close(mine, other, atol=1e-4, rtol=1e-4, msg=lambda m, i=index: f"step {i}: {m}")
    exact = ours.invert(fake_net(schedule, "eps", torch.float64), x0.double(), timesteps=ascending)
    assert (walk[-1].double() - exact).abs().max() < (reference[-1].double() - exact).abs().max() / 10
