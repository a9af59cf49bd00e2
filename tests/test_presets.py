"""Every registered experiment preset, GPU-scale ones included, exercised on the CPU in a tiny form:
parsed, its full-size model built, and one optimiser step taken on a small random batch, so a
preset cannot rot between the rare runs on real hardware."""

from __future__ import annotations

import pytest
import torch

from protodiff._registry.manager import registries
from protodiff.experiment import load_experiment
from protodiff.model import ConditionedDiffusion

PRESETS = sorted(registries().preset.names())
HEAVY = {
    "patronus-chexpert",
    "diffae-chexpert",
    "infodiff-chexpert",
}  # 224 px through a published UNet: seconds, not milliseconds


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in PRESETS])
def test_preset_builds_and_takes_a_training_step(name):
    config = load_experiment(name)
    source = config.data.build()
    model = ConditionedDiffusion.from_experiment(config)
    size = source.config.image_size
    x0 = torch.rand(2, source.channels, size, size) * 2 - 1
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    loss, _ = model(x0, torch.Generator().manual_seed(0))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    if config.prior is not None:
        prior = config.prior.build(dim=model.conditioner.dim)
        assert prior.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, model.conditioner.dim)


def test_paper_presets_match_the_published_numbers():
    prototypes = {
        "patronus-fmnist": 30,
        "patronus-cifar10": 100,
        "patronus-celeba": 100,
        "patronus-ffhq": 100,
        "patronus-chexpert": 100,
    }
    for name, k in prototypes.items():
        config = load_experiment(name)
        assert config.model.conditioner.config.prototype_layer.config.num_prototypes == k
        assert config.model.denoiser.config.channel_mult == (1, 2, 4, 4)
        assert config.train.lr == 1e-5 and config.train.ema_decay is None
        assert config.sample.sampler.config.steps == 1000 and config.sample.sampler.config.eta == 0.0
    assert load_experiment("patronus-chexpert").model.conditioner.config.encoder.config.kernel_sizes == (5,) * 5
