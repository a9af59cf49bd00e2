"""Shared fixtures. Tests run with plugin autoload as configured by the environment; tests that
need an isolated plugin set build their own PluginManager."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor, nn

from protodiff._registry.manager import registries
from protodiff._registry.registry import registering_as
from protodiff.contracts.conditioner import Condition, Conditioner
from protodiff.experiment import load_experiment


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same global RNG state."""
    torch.manual_seed(0)
    yield


class ChannelMeans(Conditioner):
    """A toy conditioner for tests: the per-channel mean colour, embedded by a linear layer."""

    @dataclass
    class Config:
        embed_dim: int = 16
        aux_weight: float = 0.0

    def __init__(self, config: Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config
        self.dim = in_channels
        self.embed_dim = config.embed_dim
        self.scale = nn.Parameter(torch.ones(in_channels))
        self.proj = nn.Linear(in_channels, config.embed_dim)

    def encode(self, x0: Tensor) -> Condition:
        vector = x0.mean(dim=(2, 3)) * self.scale
        aux = self.config.aux_weight * vector.square().mean() if self.config.aux_weight else None
        return Condition(vector, self.names, aux_loss=aux)

    def embed(self, vector: Tensor) -> Tensor:
        return self.proj(vector)


@pytest.fixture
def toy_conditioner():
    """Registers ``channel-means`` for the duration of a test."""
    regs = registries()
    with registering_as("tests"):
        regs.conditioner.add("channel-means", ChannelMeans)
    yield ChannelMeans
    regs.remove_plugin("tests")


TINY_OVERRIDES = [
    "data.image_size=16",
    "data.num_train=64",
    "data.num_test=16",
    "model.denoiser.base_channels=16",
    "model.denoiser.channel_mult=[1,2]",
    "train.steps=6",
    "train.batch_size=8",
    "train.warmup_steps=0",
    "train.log_every=1",
    "train.checkpoint_every=3",
    "sample.sampler.steps=2",
    "sample.num_images=4",
]


def tiny_conditional_model(conditioner: str):
    """An untrained ``ddpm-shapes`` model at TINY_OVERRIDES, conditioned by ``conditioner``'s test
    preset, and its test split: seeded, with the zero-initialised output layers filled in, since
    those would make every regeneration ignore the condition (what an edit test needs to see)."""
    import torch

    from protodiff.model import ConditionedDiffusion

    torch.manual_seed(0)
    config = load_experiment("ddpm-shapes", [*TINY_OVERRIDES, f"model.conditioner={{name: {conditioner}, preset: test}}"])
    model = ConditionedDiffusion.from_experiment(config).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.normal_(std=0.3)
    return model, config.data.build().open("test")


@pytest.fixture
def tiny_config():
    """A seconds-long version of the ddpm-shapes preset, with extra ``key=value`` overrides."""

    def make(*overrides: str):
        return load_experiment("ddpm-shapes", TINY_OVERRIDES + list(overrides))

    return make
