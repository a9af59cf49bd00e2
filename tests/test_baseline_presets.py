"""The baselines' presets: the CPU ones on the budget of patronus-shapes, the published ones at the
published numbers (docs/reference.md gives their sources). Every preset is also built at full size
and stepped once by tests/test_presets.py."""

from __future__ import annotations

import pytest

from protodiff.config import read_yaml
from protodiff.experiment import load_experiment, resolve_config_path

CPU_PRESETS = ["diffae-shapes", "diffae-digits", "infodiff-shapes", "infodiff-digits", "patronus-digits"]
PAPER_DATASETS = ["fmnist", "cifar10", "celeba", "ffhq", "chexpert"]
#: What a method may choose for itself on the CPU budget; everything else is patronus-shapes'.
METHOD_SECTIONS = {("model", "conditioner"), ("prior",)}


def sections(name: str) -> dict[tuple[str, ...], object]:
    """The preset's file, flattened to its sections (model split into its parts)."""
    raw = read_yaml(resolve_config_path(name))
    flat = {(key,): value for key, value in raw.items() if key != "model"}
    flat.update({("model", key): value for key, value in raw["model"].items()})
    return flat


@pytest.mark.parametrize("name", CPU_PRESETS)
def test_cpu_presets_share_patronus_shapes_budget(name):
    """Steps, batch, optimiser, schedule, UNet and sampler are patronus-shapes' (and its data, on
    shapes): when patronus-shapes changes, this names each line to change to match it."""
    reference, preset = sections("patronus-shapes"), sections(name)
    assert preset.keys() == reference.keys()
    shared = [key for key in reference if key not in METHOD_SECTIONS and not (key == ("data",) and name.endswith("-digits"))]
    differing = {".".join(key): (preset[key], reference[key]) for key in shared if preset[key] != reference[key]}
    assert not differing, f"{name} differs from patronus-shapes in (theirs, patronus-shapes'): {differing}"
    if name.endswith("-digits"):
        assert preset[("data",)] == {"name": "digits", "image_size": reference[("data",)]["image_size"]}


def test_cpu_presets_keep_the_published_method_parts():
    diffae = load_experiment("diffae-shapes")
    assert diffae.model.conditioner.config.dim == 512 and diffae.model.denoiser.config.cond_mode == "scale"
    assert diffae.prior.config.loss == "l1" and diffae.prior.config.time_mode == "scale"
    infodiff = load_experiment("infodiff-shapes").model
    assert (infodiff.conditioner.config.dim, infodiff.conditioner.config.mmd_weight) == (32, 0.1)
    assert infodiff.denoiser.config.cond_mode == "adagn"
    assert infodiff.conditioner.config.embed_dim == 4 * infodiff.denoiser.config.base_channels


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_diffae_presets_match_the_published_numbers(dataset):
    config = load_experiment(f"diffae-{dataset}")
    unet, encoder = config.model.denoiser.config, config.model.conditioner.config.encoder
    assert config.model.conditioner.config.dim == 512 and unet.cond_mode == "scale"
    assert (unet.base_channels, unet.channel_mult, unet.num_res_blocks, unet.norm_groups, unet.attention_heads) == (
        64,
        (1, 2, 4, 8),
        2,
        32,
        1,
    )
    assert unet.base_channels * unet.time_embed_mult == 512 and unet.dropout == 0.1
    side = config.data.config.image_size
    assert all(side // 2**level == 16 for level in unet.attention_levels)  # attention at 16 px
    assert encoder.channel_mult == (1, 2, 4, 8, 8) and encoder.attention_levels == unet.attention_levels
    train = config.train
    assert (train.lr, train.batch_size, train.ema_decay, train.grad_clip, train.weight_decay) == (1e-4, 32, 0.9999, 1.0, 0.0)
    assert train.steps * train.batch_size == 72_000_000
    assert (config.model.diffusion.beta_start, config.model.diffusion.beta_end, config.model.diffusion.prediction) == (
        1e-4,
        0.02,
        "eps",
    )
    assert config.sample.sampler.config.steps == 20
    assert config.prior.name == "latent-ddpm" and config.prior.preset == "diffae"
    if dataset == "celeba":
        assert config.data.config.crop == "d2c"


@pytest.mark.parametrize("dataset", PAPER_DATASETS)
def test_infodiff_presets_match_the_published_numbers(dataset):
    config = load_experiment(f"infodiff-{dataset}")
    cond, unet = config.model.conditioner.config, config.model.denoiser.config
    assert (cond.dim, cond.mmd_weight, cond.kld_weight, unet.cond_mode) == (32, 0.1, 0.0, "adagn")
    base = 32 if dataset == "fmnist" else 64
    assert (unet.base_channels, unet.channel_mult, unet.attention_levels, unet.norm_groups) == (base, (1, 2, 2, 2), (2,), 32)
    assert cond.embed_dim == 4 * base and cond.encoder.channel_mult == unet.channel_mult
    assert (config.model.diffusion.beta_start, config.model.diffusion.beta_end) == (1e-5, 1e-2)
    train = config.train
    assert (train.epochs, train.batch_size, train.lr, train.weight_decay, train.lr_schedule) == (50, 32, 2e-4, 1e-5, "cosine")
    assert train.ema_decay is None and train.grad_clip == 1.0
    assert config.sample.sampler.config.eta == 0.01 and config.prior.name == "standard-normal"
    if dataset == "celeba":
        assert config.data.config.crop == "center" and train.warmup_steps == 162770 // 32
