"""The code in docs/ runs: the conditioner of docs/architecture.md conforms and trains a step, and
every relative link points at a file that exists."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest
import torch

from protodiff._registry.manager import registries
from protodiff._registry.registry import registering_as
from protodiff.model import ConditionedDiffusion
from protodiff.testing import check_component

ROOT = Path(__file__).parent.parent
ARCHITECTURE = ROOT / "docs" / "architecture.md"


@pytest.fixture
def average_pool(monkeypatch):
    source = dict(re.findall(r"```python file=(\S+)\n(.*?)```", ARCHITECTURE.read_text(), flags=re.S))["average_pool.py"]
    module = types.ModuleType("average_pool")
    monkeypatch.setitem(sys.modules, "average_pool", module)  # dataclasses look their module up
    exec(compile(source, str(ARCHITECTURE), "exec"), module.__dict__)
    with registering_as("docs"):
        module.protodiff_register(registry=registries())
    yield module
    registries().remove_plugin("docs")


def test_the_documented_conditioner_conforms_and_trains(average_pool, tiny_config):
    check_component("conditioner", "average-pool")
    config = tiny_config("model.conditioner.name=average-pool")
    assert config.model.denoiser.config.cond_mode == "add"
    model = ConditionedDiffusion.from_experiment(config)
    assert model.conditioner.dim == 3 * 16
    loss, _ = model(torch.rand(2, 3, 16, 16) * 2 - 1, torch.Generator().manual_seed(0))
    loss.backward()
    assert model.conditioner.embedding[0].weight.grad is not None


@pytest.mark.parametrize(
    "page", sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md", ROOT / "CONTRIBUTING.md"], ids=lambda p: p.name
)
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
