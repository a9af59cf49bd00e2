"""Metrics on real models: latents and images drawn from checkpoints, and ``protodiff eval`` end to end.

A conditional model comes from the conftest's ``ChannelMeans`` toy conditioner (its latent is the
mean colour, which reads ``dark_bg`` off a shapes image perfectly); the unconditional one is the
``ddpm-shapes`` preset. Both are trained for two steps: the numbers are not the point, the plumbing is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from conftest import TINY_OVERRIDES, ChannelMeans
from protodiff.checkpoint import load_model
from protodiff.cli import main
from protodiff.data.shapes import Shapes
from protodiff.errors import ProtodiffError
from protodiff.experiment import load_experiment
from protodiff.metrics import FID, KID, TAD, AttributesCaptured, LatentAUROC
from protodiff.metrics import latent as latent_module
from protodiff.metrics.disentanglement import latent_auroc, tad_score
from protodiff.metrics.extractors import inception_file
from protodiff.metrics.fidelity import generate_images
from protodiff.metrics.latents import encode_latents
from protodiff.metrics.shared import Shared
from protodiff.registry import registering_as, registries
from protodiff.train import Trainer

CONDITIONER = "metrics-channel-means"


@pytest.fixture(scope="module", autouse=True)
def _conditioner():
    regs = registries()
    with registering_as("tests-metrics"):
        regs.conditioner.add(CONDITIONER, ChannelMeans)
    yield
    regs.remove_plugin("tests-metrics")


def _train(directory, *overrides: str):
    config = load_experiment("ddpm-shapes", [*TINY_OVERRIDES, "train.steps=2", "train.checkpoint_every=2", *overrides])
    Trainer(config, directory, device="cpu", progress=False).fit()
    return directory


@pytest.fixture(scope="module")
def ddpm_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("metrics") / "ddpm")


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("metrics") / "cond", f"model.conditioner.name={CONDITIONER}")


@pytest.fixture(scope="module")
def shapes():
    return Shapes(Shapes.Config(image_size=16, num_train=300, num_test=40))


def _metric(cls, **options):
    return cls(cls.Config(**options))


# ---------------------------------------------------------------------------------------------
# Latent metrics
# ---------------------------------------------------------------------------------------------
def test_latent_metrics_share_one_encoding_and_match_the_array_protocol(conditional_run, shapes, monkeypatch):
    model, _ = load_model(conditional_run)
    data = shapes.open("train")
    calls = []
    monkeypatch.setattr(latent_module, "encode_latents", lambda *a, **k: calls.append(1) or encode_latents(*a, **k))
    shared = Shared()
    tad = _metric(TAD, num_latents=250).compute(model, data, shared=shared)
    captured = _metric(AttributesCaptured, num_latents=250).compute(model, data, shared=shared)
    probe = _metric(LatentAUROC, num_latents=250).compute(model, data, shared=shared)
    assert len(calls) == 1

    latents = encode_latents(model, data, 250)
    assert latents.vectors.shape == (250, 3) and latents.attribute_names == data.attribute_names
    direct = tad_score(latents.vectors, latents.attributes)
    assert tad["per_fold"] == pytest.approx(direct.tad.per_fold) and len(tad["per_fold"]) == 5
    assert captured["per_fold"] == direct.captured.per_fold
    assert probe["per_fold"] == pytest.approx(latent_auroc(latents.vectors, latents.attributes).auroc.per_fold)

    # The mean colour separates a dark background from a light one in every fold.
    assert captured["captured_in_folds"]["dark_bg"] == 5
    assert tad["per_attribute"]["dark_bg"]["best_auroc"] > 0.99
    assert probe["per_attribute"]["dark_bg"]["mean"] > 0.99
    assert tad["label"] == "TAD" and captured["label"] == "attributes captured" and probe["label"] == "latent AUROC"
    assert tad["num_latents"] == 250 and tad["protocol"]["auroc_threshold"] == 0.75
    json.dumps([tad, captured, probe], allow_nan=False)  # JSON-ready, undefined values as null


def test_a_model_without_latent_is_refused(ddpm_run, shapes):
    model, _ = load_model(ddpm_run)
    for cls in (TAD, AttributesCaptured, LatentAUROC):
        with pytest.raises(ProtodiffError, match="'none' has no latent"):
            _metric(cls).check(model, shapes.open("train"))
        with pytest.raises(ProtodiffError, match="has no latent"):
            _metric(cls, num_latents=10).compute(model, shapes.open("train"))


# ---------------------------------------------------------------------------------------------
# Generation and FID/KID
# ---------------------------------------------------------------------------------------------
class FixedPrior(nn.Module):
    """Stands in for a fitted latent prior: always the same vector."""

    def __init__(self, vector: torch.Tensor) -> None:
        super().__init__()
        self.vector = vector
        self.calls = 0

    def sample(self, n: int, *, generator=None) -> torch.Tensor:
        self.calls += 1
        return self.vector.expand(n, -1).clone()


def test_generation_is_seeded_and_takes_conditions_from_data_or_prior(conditional_run, ddpm_run, shapes):
    model, config = load_model(conditional_run)
    data = shapes.open("test")
    options = dict(data=data, sampler=config.sample.sampler, batch_size=3)
    first = generate_images(model, 5, seed=1, **options)
    assert first.dtype == torch.uint8 and first.shape == (5, 3, 16, 16)
    assert torch.equal(first, generate_images(model, 5, seed=1, **options))
    assert not torch.equal(first, generate_images(model, 5, seed=2, **options))

    with pytest.raises(ProtodiffError, match="need a latent prior"):
        generate_images(model, 2, conditions="prior", **options)
    model.prior = FixedPrior(torch.zeros(1, 3))
    assert generate_images(model, 4, conditions="prior", **options).shape == (4, 3, 16, 16)
    assert model.prior.calls == 2  # one draw per batch of 3

    unconditional, _ = load_model(ddpm_run)
    assert generate_images(unconditional, 2, conditions="prior", **options).shape == (2, 3, 16, 16)


def test_fid_and_kid_metrics_share_images_and_label_the_extractor(conditional_run, shapes):
    model, config = load_model(conditional_run)
    data = shapes.open("test")
    options = dict(num_samples=50, num_real=40, extractor="identity", sampler=config.sample.sampler)
    shared = Shared()
    fid = _metric(FID, **options).compute(model, data, shared=shared, seed=0)
    kid = _metric(KID, **options, kid_subsets=10).compute(model, data, shared=shared, seed=0)
    assert fid["label"] == "FD_identity" and kid["label"] == "KD_identity"
    assert fid["value"] > 0 and np.isfinite(kid["mean"])
    assert (fid["num_generated"], fid["num_real"], fid["num_distinct_conditions"]) == (50, 40, 40)
    assert kid["protocol"]["kid_subset_size"] == 40
    assert fid["extractor"] == {"name": "identity", "layer": "flat", "weights": None}
    assert fid["sampler"]["name"] == "ddim" and fid["sampler"]["steps"] == 2
    assert len([k for k in shared._items if k[0] == "generated"]) == 1


# ---------------------------------------------------------------------------------------------
# protodiff eval
# ---------------------------------------------------------------------------------------------
def _eval(*args: str):
    return CliRunner().invoke(main, ["eval", *args, "--device", "cpu"])


def test_eval_fid_kid_writes_labelled_json_and_is_seeded(ddpm_run, tmp_path):
    values = []
    for name in ("a.json", "b.json"):
        out = tmp_path / name
        result = _eval(
            str(ddpm_run), "--metrics", "fid,kid", "--extractor", "identity", "--num-samples", "8", "--steps", "2",
            "--out", str(out), "--seed", "4",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "FD_identity = " in result.output and "FID" not in result.output
        report = json.loads(out.read_text())
        values.append(report["results"]["FD_identity"]["value"])
    assert values[0] == values[1]
    assert report["seed"] == 4 and report["dataset"]["name"] == "shapes" and report["checkpoint"].endswith("step_0000002")
    fd, kd = report["results"]["FD_identity"], report["results"]["KD_identity"]
    assert fd["metric"] == "fid" and fd["split"] == "test" and kd["metric"] == "kid"
    assert (fd["num_generated"], fd["num_real"]) == (8, 16)  # the whole (tiny) test split
    assert fd["conditions"].startswith("none") and fd["extractor"]["name"] == "identity"
    assert not any("FID" in key or "KID" in key for key in report["results"])


def test_eval_latent_metrics_end_to_end(conditional_run, tmp_path):
    out = tmp_path / "latent.json"
    result = _eval(
        str(conditional_run), "--metrics", "tad,attributes-captured,latent-auroc", "--data", "num_train=200",
        "--num-latents", "150", "--out", str(out),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert list(report["results"]) == ["TAD", "attributes captured", "latent AUROC"]
    for entry in report["results"].values():
        assert entry["split"] == "train" and entry["num_latents"] == 150 and len(entry["per_fold"]) == 5
        assert entry["protocol"]["splitter"] == "KFold(n_splits=5, shuffle=True, random_state=0)"
    assert report["dataset"]["num_train"] == 200
    assert "TAD = " in result.output and "5 folds" in result.output


@pytest.mark.parametrize(
    ("run", "args", "message"),
    [
        ("ddpm", ["--metrics", "tad"], "conditioner 'none' has no latent"),
        ("ddpm", ["--metrics", "fid"], inception_file()),
        ("ddpm", ["--metrics", "fidd"], "unknown metric 'fidd'"),
        ("ddpm", ["--metrics", "tad", "--num-samples", "4"], "--num-samples does not apply"),
        ("ddpm", ["--metrics", "fid", "--inception-weights", "x.pth", "--extractor", "identity"], "--inception-weights"),
        ("ddpm", ["--metrics", "fid", "--extractor", "nope"], "unknown feature extractor 'nope'"),
        ("ddpm", ["--metrics", "fid", "--data", "image_size=32"], "fix --data image_size"),
        ("cond", ["--metrics", "fid", "--extractor", "identity", "--conditions", "prior"], "need a latent prior"),
        ("cond", ["--metrics", "tad", "--num-latents", "3"], "tad: num_latents must be at least the number of folds"),
        ("cond", ["--metrics", "latent-auroc", "--data", "num_train=4"], "5-fold cross-validation needs at least 5"),
    ],
)
def test_eval_errors_are_one_line(ddpm_run, conditional_run, args, run, message, tmp_path):
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "empty-hub"))  # no Inception weights to be found
    try:
        result = _eval(str(ddpm_run if run == "ddpm" else conditional_run), *args, "--out", str(tmp_path / "x.json"))
    finally:
        torch.hub.set_dir(previous)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("protodiff: error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.output
    assert not (tmp_path / "x.json").exists()
