"""Option values are checked for range and meaning where they are parsed (one line naming the key
path), and against the model where only the model can tell (one line naming the option)."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_OVERRIDES

from protodiff import validation
from protodiff.config import ComponentSpec
from protodiff.diffusion import NoiseSchedule, ScheduleConfig
from protodiff.errors import ConfigError, OptionError, ProtodiffError
from protodiff.experiment import load_experiment
from protodiff.model import ConditionedDiffusion


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize(
    "check", [validation.positive, validation.probability, validation.finite, lambda **v: validation.at_least(0, **v)]
)
def test_checks_refuse_nan_and_infinity_that_a_comparison_would_wave_through(check, bad):
    with pytest.raises(ValueError, match=f"x must be .*, got {bad}"):
        check(x=bad)


def test_checks_skip_unset_options_and_name_list_items():
    validation.at_least(1, x=None, y=[1, 2])
    with pytest.raises(ValueError, match=r"y\[1\] must be at least 1, got 0"):
        validation.at_least(1, y=[1, 0])
    with pytest.raises(ValueError, match="must be in \\[0, 4294967295\\]"):
        validation.seed(seed=2**32)


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr=.nan", "train: lr must be positive, got nan"),
    ("train.weight_decay=-1", "train: weight_decay must be at least 0, got -1.0"),
    ("train.betas=[0.9, 1.0]", "train: betas must each be in [0, 1)"),
    ("train.lr_multipliers={conditioner: .inf}", "train: lr_multipliers.conditioner must be positive, got inf"),
    ("seed=-1", "seed must be in [0, 4294967295], got -1"),
    ("sample.num_images=0", "sample: num_images must be at least 1, got 0"),
    ("sample.sampler.steps=0", "sample.sampler: steps must be at least 1, got 0"),
    ("model.denoiser.attention_heads=0", "model.denoiser: attention_heads must be at least 1, got 0"),
    ("model.diffusion.t_mean=.nan", "model.diffusion: t_mean must be a finite number, got nan"),
    ("data.subset_seed=99999999999", "data: subset_seed must be in [0, 4294967295]"),
])  # fmt: skip
def test_experiment_options_are_checked_for_range_with_their_key_path(override, message):
    with pytest.raises(ConfigError) as info:
        load_experiment("ddpm-shapes", [override])
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("kind", "name", "options", "message"), [
    ("explainer", "df-rise", {"probability": 1.0}, "probability must be in (0, 1), got 1.0"),
    ("explainer", "df-rise", {"baseline": "median"}, "baseline must be one of published, mean, coverage, got 'median'"),
    ("explainer", "df-cam", {"t": -1}, "t must be at least 0, got -1"),
    ("explainer", "edit", {"reference": 0}, "reference must be at least 1, got 0"),
    ("explainer", "attribute-edit", {"amount": float("inf")}, "amount must be a finite number, got inf"),
    ("metric", "tad", {"fold_seed": -1}, "fold_seed must be in [0, 4294967295], got -1"),
    ("metric", "inversion-error", {"steps": []}, "steps must list at least one number of steps"),
    ("metric", "dimension-auroc", {"num_latents": 1}, "num_latents must be at least 2, got 1"),
    ("prototype_layer", "log-l2", {"restart_correlation": 2.0}, "restart_correlation must be in [-1.0, 1.0], got 2.0"),
    ("encoder", "patronus-conv", {"strides": [2, 0, 1, 1]}, "strides[1] must be at least 1, got 0"),
    ("latent_prior", "latent-ddpm", {"beta_start": 0.5, "beta_end": 0.1}, "betas need 0 < beta_start <= beta_end < 1"),
    ("sampler", "exponential", {"gamma": float("nan")}, "gamma must be at least 0, got nan"),
])  # fmt: skip
def test_component_options_are_checked_for_range(kind, name, options, message):
    with pytest.raises(ConfigError) as info:
        ComponentSpec(kind, name, raw=options).resolved(where=name, source="--set")
    assert str(info.value) == f"--set: {name}: {message}"


def test_sampler_steps_beyond_the_schedule_are_one_line():
    schedule = NoiseSchedule(ScheduleConfig(timesteps=100))
    for name in ("ddim", "ddpm", "dpm-solver++", "exponential"):
        sampler = ComponentSpec("sampler", name, raw={"steps": 101}).build(schedule=schedule)
        with pytest.raises(OptionError, match=r"sampler steps must be between 1 and 100 \(the schedule's timesteps\), got 101"):
            sampler.timesteps()


@pytest.fixture(scope="module")
def model():
    config = load_experiment("ddpm-shapes", [*TINY_OVERRIDES, "model.conditioner={name: patronus, preset: test}"])
    return ConditionedDiffusion.from_experiment(config).eval(), config


def explain(model, name: str, **options):
    explainer = ComponentSpec("explainer", name, raw=options).build()
    return explainer.explain(model, torch.zeros(1, 3, 16, 16))


def test_what_only_the_model_can_check_is_one_line_before_any_work(model):
    model, _ = model
    with pytest.raises(OptionError, match=r"^t=1000 is not a timestep of this model's schedule \(0..999\)$"):
        explain(model, "df-rise", t=1000)
    with pytest.raises(OptionError, match=r"^trajectory=51: the sampling walk has 50 steps to explain; use at most 50$"):
        explain(model, "df-cam", trajectory=51)
    with pytest.raises(ProtodiffError, match="no block 'mid' that outputs a feature map"):
        explain(model, "df-cam", layer="mid")  # a container: it has no output of its own, and hooked gave a KeyError
    with pytest.raises(ProtodiffError, match="is not a finite number a condition can hold"):
        explain(model, "edit", to=["proto_00=1e39"], sampler={"name": "ddim", "steps": 2})
    metric = ComponentSpec("metric", "inversion-error", raw={"steps": [20, 2000]}).build()
    with pytest.raises(OptionError, match="inversion-error.steps: 2000 steps, more than the schedule's 1000 timesteps"):
        metric.check(model, None)
