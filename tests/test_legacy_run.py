"""A run directory written by an earlier protodiff still loads and computes the same numbers.

``fixtures/legacy-run`` was written by commit f8f6921 (before the package layout changed):
``protodiff train`` of a tiny Patronus model on ``shapes`` (4 steps, the ``test`` presets), then
``protodiff fit-prior --set prior.preset=test``; only ``config.yaml`` and the weights are kept.
Its config says ``cond_mode: null`` (the mode was not recorded then). ``legacy-run-outputs``
holds what that code computed from it: the condition of the first four test images, four
samples with conditions from the prior (seed 0), and four regenerations from those conditions
(noise seed 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from protodiff.checkpoint import load_model

FIXTURES = Path(__file__).parent / "fixtures"
RUN = FIXTURES / "legacy-run"


@pytest.fixture(scope="module")
def legacy():
    model, config = load_model(RUN)
    return model, config, load_file(str(FIXTURES / "legacy-run-outputs.safetensors"))


def test_the_old_config_parses_and_rebuilds_the_model(legacy):
    model, config, _ = legacy
    assert config.model.conditioner.name == "patronus" and model.prior is not None
    assert "cond_mode: null" in (RUN / "config.yaml").read_text()
    assert config.model.denoiser.config.cond_mode == "add"  # null meant the conditioner's preferred mode
    assert model.conditioner.names == [f"proto_{i:02d}" for i in range(5)]


@torch.no_grad()
def test_the_old_weights_give_the_old_numbers(legacy):
    model, config, expected = legacy
    data = config.data.build().open("test")
    x0 = torch.stack([data[i][0] for i in range(4)])
    condition = model.encode(x0)
    torch.testing.assert_close(condition.vector, expected["s"])
    torch.testing.assert_close(condition.maps, expected["maps"])
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(samples, expected["prior_samples"], atol=1e-5, rtol=1e-4)
    again = model.sample(condition=condition, x_T=model.noise(4, torch.Generator().manual_seed(1)))
    torch.testing.assert_close(again, expected["recon"], atol=1e-5, rtol=1e-4)
