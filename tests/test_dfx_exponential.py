"""The exponential sampler (plugin dfx): the published schedules, their use with any model, the plot."""

from __future__ import annotations

import math

import pytest
import torch

from protodiff.config import ComponentSpec
from protodiff.diffusion.schedule import NoiseSchedule
from protodiff.errors import ConfigError
from protodiff_dfx.exponential import exponential_timesteps, plot_spacing


def published(mode: str) -> list[int]:
    """The published formula written out: alpha = exp(ln T / (l + gamma)), T = 1000, l = 30, gamma = 60."""
    alpha = math.exp(math.log(1000) / 90)
    rising = [math.floor(alpha ** (i + 61) + 1e-9) for i in range(30)]
    if mode == "late":
        return [min(v, 999) for v in sorted(rising, reverse=True)]
    return [999] + sorted((1000 - v for v in rising if v != 1000), reverse=True)


@pytest.mark.parametrize("mode", ["early", "late"])
def test_the_published_schedules(mode):
    steps = exponential_timesteps(1000, 30, 60, mode)
    assert steps == published(mode) and len(steps) == 30
    gaps = [a - b for a, b in zip(steps, steps[1:])]
    # early crowds near t = T (after its first jump from 999), late near t = 0
    if mode == "early":
        assert steps[:2] == [999, 893] and steps[-1] == 74 and gaps[1] < gaps[-1]
    else:
        assert steps[0] == 999 and steps[-1] == 107 and gaps[0] > gaps[-1]


def sampler(**options):
    return ComponentSpec("sampler", "exponential", raw=options).build(schedule=NoiseSchedule())


def test_the_sampler_walks_its_schedule_with_ddim_steps_and_sees_every_step():
    late = sampler(mode="late")
    schedule = NoiseSchedule()
    target = torch.full((2, 1, 4, 4), 0.25)
    seen = []
    x0 = late.sample(
        lambda x_t, t: schedule.predict_eps(x_t, t, target),
        torch.randn(2, 1, 4, 4),
        generator=torch.Generator().manual_seed(0),
        callback=lambda info: seen.append(info.t),
    )
    assert seen == exponential_timesteps(1000, 30, 60, "late")
    assert torch.allclose(x0, target, atol=1e-4)
    assert sampler(mode="early", steps=10, gamma=20).timesteps() == exponential_timesteps(1000, 10, 20, "early")


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="mode: expected one of 'early', 'late'"):
        sampler(mode="middle")
    with pytest.raises(ValueError, match="repeat a timestep"):
        exponential_timesteps(1000, 900, 0, "late")


def test_the_spacing_plot_is_written(tmp_path):
    path = plot_spacing(tmp_path / "spacing.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
