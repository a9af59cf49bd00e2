from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from protodiff.config import ComponentSpec, apply_overrides, dump_yaml, parse, read_yaml, to_dict
from protodiff.errors import ConfigError
from protodiff.experiment import ExperimentConfig, load_experiment


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def test_defaults_resolve_every_component():
    config = parse(ExperimentConfig, {})
    assert config.model.denoiser.name == "unet"
    assert config.model.denoiser.config.channel_mult == (1, 2, 4, 4)  # the published UNet
    assert config.sample.sampler.config.steps == 50
    assert config.data.config.image_size == 32


def test_unknown_key_names_key_and_file(tmp_path):
    path = write(tmp_path, "train:\n  stpes: 10\n")
    with pytest.raises(ConfigError, match=r"exp.yaml: train.stpes: unknown key \(did you mean 'steps'\?\)"):
        load_experiment(path)


def test_unknown_component_option_is_an_error(tmp_path):
    path = write(tmp_path, "model:\n  denoiser: {name: unet, base_chanels: 8}\n")
    with pytest.raises(ConfigError, match=r"model.denoiser.base_chanels: unknown key \(did you mean 'base_channels'"):
        load_experiment(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train: {batch_size: '16'}", r"train.batch_size: expected an integer, got '16'"),
        ("train: {lr: true}", r"train.lr: expected a number, got True"),
        ("model: {denoiser: {name: unet, channel_mult: 4}}", r"model.denoiser.channel_mult: expected a list"),
        ("model: {diffusion: {schedule: quadratic}}", r"model.diffusion.schedule: expected one of 'linear', 'cosine'"),
        ("sample: {sampler: {name: ddmi}}", r"sample.sampler.name: unknown sampler 'ddmi'; did you mean"),
        ("model: {denoiser: {name: unet, preset: huge}}", r"model.denoiser.preset: denoiser 'unet' has no preset 'huge'"),
        ("train: {steps: 10, epochs: 2}", r"train: set exactly one of train.steps and train.epochs"),
        ("model: {denoiser: {name: unet, norm_groups: 7}}", r"model.denoiser: 64 channels are not divisible"),
        ("[1, 2]", r"the top level must be a mapping"),
        ("train: {steps: [1", r"exp.yaml: line \d+: expected ',' or '\]'"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_experiment(write(tmp_path, text + "\n"))
    assert "\n" not in str(info.value)


def test_overrides_apply_before_validation(tmp_path):
    path = write(tmp_path, "train: {steps: 10}\nsample: {sampler: ddim}\n")
    config = load_experiment(path, ["train.steps=3", "model.denoiser.preset=tiny", "sample.sampler.steps=7", "seed=5"])
    assert config.train.steps == 3 and config.seed == 5
    assert config.model.denoiser.config.base_channels == 32
    assert config.sample.sampler.config.steps == 7
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.steps"])


def test_naming_another_component_starts_from_its_defaults():
    """The published presets give DDIM an eta that dpm-solver++ does not take: renaming drops the
    file's options, keeps the other overrides whatever their order."""
    config = load_experiment("patronus-celeba", ["sample.sampler.steps=15", "sample.sampler.name=dpm-solver++"])
    assert config.sample.sampler.name == "dpm-solver++" and config.sample.sampler.config.steps == 15
    assert load_experiment("patronus-celeba", ["sample.sampler.name=dpm-solver++"]).sample.sampler.config.steps == 20
    assert load_experiment("patronus-celeba", ["sample.sampler.name=ddim"]).sample.sampler.config.steps == 1000


def test_preset_values_are_overridden_by_explicit_keys():
    config = parse(ExperimentConfig, {"model": {"denoiser": {"name": "unet", "preset": "tiny", "dropout": 0.2}}})
    assert config.model.denoiser.config.dropout == 0.2
    assert config.model.denoiser.config.base_channels == 32


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_experiment("ddpm-shapes")
    text = dump_yaml(config)
    again = parse(ExperimentConfig, yaml.safe_load(text))
    assert to_dict(again) == to_dict(config)
    path = tmp_path / "saved.yaml"
    path.write_text(text)
    assert to_dict(load_experiment(path)) == to_dict(config)


def test_missing_file_and_unknown_preset(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match=r"ddpm-shapez: no such config file or preset .*did you mean 'ddpm-shapes'"):
        load_experiment("ddpm-shapez")


def test_component_spec_builds_with_context():
    from protodiff.diffusion.schedule import NoiseSchedule

    sampler = ComponentSpec("sampler", "ddpm", raw={"steps": 10}).build(schedule=NoiseSchedule())
    assert type(sampler).__name__ == "DDPMSampler" and sampler.config.steps == 10


def test_the_resolved_config_records_the_conditioning_mode(toy_conditioner):
    from protodiff._registry.manager import registries
    from protodiff._registry.registry import registering_as

    class PrefersAdaGN(toy_conditioner):
        preferred_mode = "adagn"

    with registering_as("tests-mode"):
        registries().conditioner.add("prefers-adagn", PrefersAdaGN)
    try:
        assert parse(ExperimentConfig, {}).model.denoiser.config.cond_mode == "add"
        chosen = parse(ExperimentConfig, {"model": {"conditioner": {"name": "prefers-adagn"}}})
        assert "cond_mode: adagn" in dump_yaml(chosen)
        overridden = {"model": {"conditioner": {"name": "prefers-adagn"}, "denoiser": {"name": "unet", "cond_mode": "scale"}}}
        assert parse(ExperimentConfig, overridden).model.denoiser.config.cond_mode == "scale"
    finally:
        registries().remove_plugin("tests-mode")
