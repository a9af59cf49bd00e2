"""Shared fixtures. Tests run with plugin autoload as configured by the environment; tests that
need an isolated plugin set build their own PluginManager."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same global RNG state and leaves thread settings alone."""
    torch.manual_seed(0)
    yield
