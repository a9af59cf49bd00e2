"""The core names no method: a throw-away plugin adds a kind of component the core has never heard
of and a conditioning mode of its own, and a model built from both trains through the CLI.

The plugin is a sparse-autoencoder-style conditioner: a ``codebook`` (the new kind, with its own
contract and conformance check) turns pooled patch features into a sparse code, and the denoiser
applies the code by gating (the new ``gate`` mode). Nothing in protodiff is edited for it.
"""

from __future__ import annotations

import importlib
import textwrap

import pytest
import yaml
from click.testing import CliRunner
from conftest import TINY_OVERRIDES

from protodiff._registry.manager import PluginManager, registries, reset_plugin_manager
from protodiff.checkpoint import load_model
from protodiff.cli import main
from protodiff.testing import ConformanceError, check_component

SPARSE_PLUGIN = '''
"""A sparse code as the condition: a kind (codebook) and a mode (gate) the core does not know."""

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protodiff import Registries, hookimpl
from protodiff._registry.component import Component
from protodiff.config import ComponentSpec, component
from protodiff.contracts import Condition, Conditioner, ConditioningMode
from protodiff.testing import build, require


class Codebook(nn.Module, Component, ABC):
    """The new kind's contract: features (B, D) -> a sparse code (B, size)."""

    size: int

    @abstractmethod
    def forward(self, features): ...


def check_codebook(name):
    codebook = build("codebook", name, feature_dim=6)
    code = codebook(torch.randn(4, 6))
    require(code.shape == (4, codebook.size), f"codebook {name}: code has shape {tuple(code.shape)}")
    require(bool((code == 0).any()), f"codebook {name}: the code must be sparse")


class TopK(Codebook):
    @dataclass
    class Config:
        size: int = 8
        k: int = 2

    presets = {"test": {"size": 4, "k": 1}}

    def __init__(self, config, *, feature_dim):
        super().__init__()
        self.size = config.size
        self.k = config.k
        self.dictionary = nn.Linear(feature_dim, config.size)

    def forward(self, features):
        code = F.relu(self.dictionary(features))
        kept = code.topk(self.k, dim=1).indices
        return code * torch.zeros_like(code).scatter(1, kept, 1.0)


class Gate(ConditioningMode):
    """The time as a bias; the condition gates every channel."""

    @staticmethod
    def apply(h, t, c, norm):
        h = F.silu(norm(h if t is None else h + t))
        return h if c is None else h * torch.sigmoid(c)


class SparseAutoencoder(Conditioner):
    preferred_mode = "gate"

    @dataclass
    class Config:
        codebook: ComponentSpec = component("codebook", "top-k")
        embed_dim: int = 16

    def __init__(self, config, *, in_channels, image_size):
        super().__init__()
        self.features = nn.Conv2d(in_channels, 6, 3, padding=1)
        self.codebook = config.codebook.build(feature_dim=6)
        self.dim = self.codebook.size
        self.embed_dim = config.embed_dim
        self.embedding = nn.Linear(self.dim, config.embed_dim)

    def encode(self, x0):
        return Condition(self.codebook(self.features(x0).mean(dim=(2, 3))), self.names)

    def embed(self, vector):
        return self.embedding(vector)


@hookimpl
def protodiff_add_kinds(registry: Registries):
    registry.add_kind("codebook", Codebook, check=check_codebook)


@hookimpl
def protodiff_register(registry: Registries):
    registry.codebook.add("top-k", TopK)
    registry.cond_mode.add("gate", Gate)
    registry.conditioner.add("sparse-autoencoder", SparseAutoencoder)
'''


@pytest.fixture
def sparse_plugin(tmp_path, monkeypatch):
    """Only the core and the throw-away plugin, loaded as a user trying it out would (PROTODIFF_PLUGINS)."""
    (tmp_path / "sparse_plugin.py").write_text(textwrap.dedent(SPARSE_PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setenv("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PROTODIFF_PLUGINS", "sparse_plugin")
    reset_plugin_manager()
    yield tmp_path
    reset_plugin_manager()


def test_a_plugin_adds_a_kind_and_a_mode_and_trains_through_the_cli(sparse_plugin):
    assert "encoder" not in registries() and "prototype_layer" not in registries()  # Patronus' kinds: not the core's
    for kind, name in (("codebook", "top-k"), ("cond_mode", "gate"), ("conditioner", "sparse-autoencoder")):
        check_component(kind, name)
    listed = CliRunner().invoke(main, ["plugins"]).output
    assert "sparse_plugin  (not installed: " in listed and "kinds: codebook" in listed and "cond_mode: gate" in listed

    run = sparse_plugin / "run"
    sets = [arg for o in (*TINY_OVERRIDES, "model.conditioner.name=sparse-autoencoder", "train.steps=2") for arg in ("--set", o)]
    result = CliRunner().invoke(main, ["train", "ddpm-shapes", *sets, "--out", str(run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["denoiser"]["cond_mode"] == "gate"
    assert saved["conditioner"]["codebook"] == {"name": "top-k", "size": 8, "k": 2}
    model, _ = load_model(run)
    modes = {type(m).__name__: m.mode.__name__ for m in model.denoiser.modules() if hasattr(m, "mode")}
    assert modes == {"ResBlock": "Gate"}


def test_the_new_kinds_check_runs_through_check_component(sparse_plugin):
    class Dense(registries().codebook.contract):
        def __init__(self, config, *, feature_dim):
            super().__init__()
            self.size = 4

        def forward(self, features):
            return features[:, :4] + 10

    registries().codebook.add("dense", Dense)
    with pytest.raises(ConformanceError, match="codebook dense: the code must be sparse"):
        check_component("codebook", "dense")


def test_an_unknown_mode_is_one_line_naming_the_known_ones(sparse_plugin):
    result = CliRunner().invoke(main, ["config", "ddpm-shapes", "--set", "model.denoiser.cond_mode=gaet"])
    assert result.exit_code == 2
    assert "unknown cond_mode 'gaet'; did you mean 'gate'" in result.output


def test_without_the_plugin_its_kind_is_unknown_in_one_line(monkeypatch):
    monkeypatch.setenv("PROTODIFF_DISABLE_PLUGIN_AUTOLOAD", "1")
    manager = PluginManager()
    with pytest.raises(AttributeError, match="no kind of component 'codebook'.*protodiff_add_kinds"):
        manager.registries.codebook  # noqa: B018
