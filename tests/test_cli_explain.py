"""``protodiff explain``: every registered explainer is a subcommand with the same options; the
dfx explainers on a conditional and a plain model."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from conftest import TINY_OVERRIDES
from protodiff import registries
from protodiff.cli import main
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.registry import registering_as

PATRONUS = "model.conditioner={name: patronus, preset: test}"


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


def train(path, *extra: str) -> str:
    overrides = [arg for o in (*TINY_OVERRIDES, *extra) for arg in ("--set", o)]
    invoke("train", "ddpm-shapes", *overrides, "--out", str(path), "--device", "cpu")
    return str(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain")
    return {
        "patronus": train(root / "patronus", PATRONUS, "data.image_size=32", "model.denoiser.channel_mult=[1,2]"),
        "plain": train(root / "plain"),
    }


def test_every_registered_explainer_is_a_subcommand():
    listed = invoke("explain", "--help")
    assert registries().explainer.names() and all(name in listed for name in registries().explainer.names())


@pytest.mark.parametrize("model", ["patronus", "plain"])
@pytest.mark.parametrize("explainer", ["df-rise", "df-cam"])
def test_saliency_explainers_write_maps_facts_and_a_figure_deterministically(runs, model, explainer, tmp_path):
    options = ["--set", "trajectory=3"] + (["--set", "num_masks=16", "--set", "batch_size=8"] if explainer == "df-rise" else [])
    for out in ("a", "b"):
        invoke("explain", explainer, runs[model], "--n", "3", "--seed", "1", "--out", str(tmp_path / out), *options)
    tensors = load_file(str(tmp_path / "a" / "tensors.safetensors"))
    side = tensors["images"].shape[-1]
    assert tensors["saliency"].shape == (3, side, side) and torch.isfinite(tensors["saliency"]).all()
    assert torch.equal(tensors["saliency"], load_file(str(tmp_path / "b" / "tensors.safetensors"))["saliency"])
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["explainer"] == explainer
    assert (tmp_path / "a" / "saliency.png").read_bytes()[:4] == b"\x89PNG"
    assert tensors["trajectory_saliency"].shape == (3, side, side) and (tmp_path / "a" / "trajectory.png").is_file()


def test_bad_names_and_options_are_one_line(runs):
    assert "did you mean" in invoke("explain", "df-rsie", runs["plain"], code=2)
    out = invoke("explain", "df-rise", runs["plain"], "--set", "num_mask=3", code=2)
    assert out.count("\n") == 1 and "num_mask" in out
    assert "no block" in invoke("explain", "df-cam", runs["plain"], "--set", "layer=nowhere", code=2)


def test_a_plugins_explainer_appears_with_no_change_to_the_command(runs, tmp_path):
    class Brightness(Explainer):
        """Mean brightness of each image (a throw-away explainer)."""

        def explain(self, model, batch):
            return Explanation("brightness", {"mean": batch.mean(dim=(1, 2, 3))}, {"count": len(batch)})

    with registering_as("tests-explain"):
        registries().explainer.add("brightness-test", Brightness)
    try:
        assert "Mean brightness" in invoke("explain", "--help")
        invoke("explain", "brightness-test", runs["plain"], "--n", "2", "--out", str(tmp_path / "b"))
        assert json.loads((tmp_path / "b" / "meta.json").read_text()) == {"explainer": "brightness", "count": 2}
    finally:
        registries().remove_plugin("tests-explain")
