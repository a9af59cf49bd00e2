"""The baselines through the command line, exactly as Patronus goes through it: train, encode, names,
fit-prior, sample from data, from the prior and with inversion, eval. Nothing names a method."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import TINY_OVERRIDES

from protodiff.checkpoint import load_model
from protodiff.cli import main

MODES = {"diffae": "scale", "infodiff": "adagn"}


def invoke(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module", params=sorted(MODES))
def run(request, tmp_path_factory):
    method = request.param
    path = tmp_path_factory.mktemp(method) / "run"
    conditioner = f"model.conditioner={{name: {method}, preset: test}}"
    overrides = [arg for o in (*TINY_OVERRIDES, conditioner, "data.image_size=32") for arg in ("--set", o)]
    invoke("train", "ddpm-shapes", *overrides, "--out", str(path), "--device", "cpu")
    return method, path


def test_train_records_the_methods_conditioning_mode(run):
    method, path = run
    _model, config = load_model(path)
    assert config.model.denoiser.config.cond_mode == MODES[method]
    assert f"cond_mode: {MODES[method]}" in (path / "config.yaml").read_text()


def test_encode_and_names(run, tmp_path):
    _, path = run
    model, _ = load_model(path)
    invoke("encode", str(path), "--limit", "5", "--out", str(tmp_path / "c.npz"))
    arrays = np.load(tmp_path / "c.npz")
    assert arrays["vector"].shape == (5, model.conditioner.dim) and "maps" not in arrays
    assert list(arrays["names"][:2]) == ["dim_00", "dim_01"]
    output = invoke("names", str(path), "1=thickness")
    assert "  1  thickness" in output and "  0  dim_00" in output
    assert load_model(path)[0].conditioner.names[1] == "thickness"


def test_sample_from_data_with_and_without_inversion(run, tmp_path):
    _, path = run
    for flag in ([], ["--invert"]):
        out = tmp_path / f"r{len(flag)}.png"
        invoke("sample", str(path), "--condition-on", "test", "--n", "2", "--steps", "2", *flag, "--out", str(out))
        assert out.is_file()


def test_fit_the_declared_prior_then_sample_from_nothing(run, tmp_path):
    _, path = run
    assert "fitted latent-ddpm on 64 vectors" in invoke("fit-prior", str(path), "--set", "prior.preset=test")
    invoke("sample", str(path), "--n", "3", "--steps", "2", "--seed", "1", "--out", str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").is_file()


def test_eval_latent_and_inversion_metrics(run, tmp_path):
    _, path = run
    invoke(
        "eval",
        str(path),
        "--metrics",
        "tad,latent-auroc,dimension-auroc,inversion-error",
        "--set",
        "inversion-error.num_images=2",
        "--set",
        "inversion-error.steps=[2]",
        "--out",
        str(tmp_path / "e.json"),
    )
    results = json.loads((tmp_path / "e.json").read_text())["results"]
    assert results["TAD"]["mean"] >= 0.0 and 0.0 <= results["latent AUROC"]["mean"] <= 1.0
    assert results["dimension AUROC"]["dimensions"][0] == "dim_00"
    assert set(results["inversion round trip"]["by_steps"]) == {"2"}


@pytest.mark.parametrize("run", ["infodiff"], indirect=True)
def test_infodiffusions_own_prior_is_one_flag_away(run, tmp_path):
    _, path = run
    assert "fitted standard-normal on 64 vectors" in invoke("fit-prior", str(path), "--prior", "standard-normal")
    invoke("sample", str(path), "--n", "2", "--steps", "2", "--out", str(tmp_path / "n.png"))
    assert load_model(path)[0].prior.sample(4).shape == (4, 4)


def test_diffae_editing_runs_on_every_vector_conditioner(run, tmp_path):
    _method, path = run
    out = tmp_path / "edit"
    invoke(
        "explain",
        "attribute-edit",
        str(path),
        "--n",
        "2",
        "--attribute",
        "red_square",
        "--set",
        "steps=5",
        "--set",
        "fit_images=16",
        "--set",
        "sampler.steps=2",
        "--out",
        str(out),
    )
    meta = json.loads((out / "meta.json").read_text())
    assert meta["attributes"] == ["red_square"] and meta["amount"] == 0.3 and (out / "edit.png").exists()
    assert meta["direction"] == "normal"
    options = ["--n", "2", "--attribute", "red_square", "--set", "steps=5", "--set", "fit_images=16", "--set", "sampler.steps=2"]
    invoke("explain", "attribute-edit", str(path), *options, "--set", "direction=mean-difference", "--out", str(out / "mean"))
    meta = json.loads((out / "mean" / "meta.json").read_text())
    assert meta["direction"] == "mean-difference" and meta["amount"] == 1.0  # its own unit
    # The difference given the image's other attributes reads them with a judge: refused without one.
    out = invoke("explain", "attribute-edit", str(path), *options, "--set", "direction=conditional", code=2)
    assert out.count("\n") == 1 and "pass --classifier DIR" in out
