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
from conftest import TINY_OVERRIDES, ChannelMeans
from torch import nn

from protodiff._registry.manager import registries
from protodiff._registry.registry import registering_as
from protodiff.checkpoint import load_model
from protodiff.cli import main
from protodiff.contracts.metric import EvalContext
from protodiff.data.shapes import Shapes
from protodiff.errors import ProtodiffError
from protodiff.experiment import load_experiment
from protodiff.metrics.fidelity.feature_extractors import inception_file
from protodiff.metrics.fidelity.images import generate_images
from protodiff.metrics.fidelity.metric_fid_kid import FID, KID
from protodiff.metrics.latent import latents as latents_module
from protodiff.metrics.latent.latents import encode_latents
from protodiff.metrics.latent.metric_latent_auroc import LatentAUROC
from protodiff.metrics.latent.metric_tad import TAD, AttributesCaptured
from protodiff.metrics.latent.protocol_scores import latent_auroc, tad_score
from protodiff.provenance import code_version
from protodiff.training import Trainer

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
    monkeypatch.setattr(latents_module, "encode_latents", lambda *a, **k: calls.append(1) or encode_latents(*a, **k))
    context = EvalContext(shapes, "train", model.device)
    tad = _metric(TAD, num_latents=250).compute(model, data, context)
    captured = _metric(AttributesCaptured, num_latents=250).compute(model, data, context)
    probe = _metric(LatentAUROC, num_latents=250).compute(model, data, context)
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
            _metric(cls, num_latents=10).compute(model, shapes.open("train"), EvalContext(shapes, "train", model.device))


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
    context = EvalContext(shapes, "test", model.device, seed=0)
    fid = _metric(FID, **options).compute(model, data, context)
    kid = _metric(KID, **options, kid_subsets=10).compute(model, data, context)
    assert fid["label"] == "FD_identity" and kid["label"] == "KD_identity"
    assert fid["value"] > 0 and np.isfinite(kid["mean"])
    assert (fid["num_generated"], fid["num_real"], fid["num_distinct_conditions"]) == (50, 40, 40)
    assert kid["protocol"]["kid_subset_size"] == 40
    assert fid["extractor"] == {"name": "identity", "layer": "flat", "weights": None}
    assert fid["sampler"]["name"] == "ddim" and fid["sampler"]["steps"] == 2
    assert len([k for k in context.cache.keys() if k[0] == "generated"]) == 1  # noqa: SIM118 (an EvalCache, not a dict)


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
    assert report["code"] == code_version()  # which code computed the numbers
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


def test_metric_options_are_set_like_any_component_option(conditional_run, tmp_path):
    out = tmp_path / "tad.json"
    args = ["--metrics", "tad", "--set", "tad.auroc_threshold=0.9", "--set", "tad.num_latents=40", "--out", str(out)]
    result = _eval(str(conditional_run), *args)
    assert result.exit_code == 0, result.output
    tad = json.loads(out.read_text())["results"]["TAD"]
    assert tad["protocol"]["auroc_threshold"] == 0.9 and tad["num_latents"] == 40


def test_evaluate_is_the_library_call_behind_the_command(conditional_run):
    import protodiff

    results = protodiff.evaluate(
        conditional_run, ["tad", "latent-auroc"], options={"tad": {"num_latents": 60}, "latent-auroc": {"num_latents": 60}}
    )
    assert list(results.results) == ["TAD", "latent AUROC"] and results["tad"] is results["TAD"]
    assert results.weights == "ema" and results.checkpoint.endswith("step_0000002") and results.seed == 0
    assert results.summary()[0].startswith("TAD = ") and "60 train latents" in results.summary()[0]

    model, config = load_model(conditional_run)
    model.train()
    in_memory = protodiff.evaluate(model, "tad", options={"tad": {"num_latents": 60}}, experiment=config)
    assert in_memory["TAD"]["per_fold"] == results["TAD"]["per_fold"] and in_memory.checkpoint is None
    assert model.training  # evaluated in eval mode, handed back as it came
    with pytest.raises(ProtodiffError, match="needs its experiment"):
        protodiff.evaluate(model, "tad")


@pytest.mark.parametrize(
    ("run", "args", "message"),
    [
        ("ddpm", ["--metrics", "tad"], "conditioner 'none' has no latent"),
        ("ddpm", ["--metrics", "fid"], inception_file()),
        ("ddpm", ["--metrics", "fidd"], "unknown metric 'fidd'"),
        ("ddpm", ["--metrics", "tad", "--num-samples", "4"], "--num-samples does not apply"),
        ("ddpm", ["--metrics", "fid", "--inception-weights", "x.pth", "--extractor", "identity"], "--inception-weights"),
        ("ddpm", ["--metrics", "fid", "--extractor", "nope"], "unknown feature_extractor 'nope'"),
        ("ddpm", ["--metrics", "fid", "--data", "image_size=32"], "set data.image_size=16"),
        ("ddpm", ["--metrics", "fid", "--set", "data.image_size=32"], "set data.image_size=16"),
        (
            "cond",
            ["--metrics", "tad", "--set", "tad.auroc_treshold=0.9"],
            "options: tad.auroc_treshold: unknown key (did you mean 'auroc_threshold'?)",
        ),
        ("cond", ["--metrics", "tad", "--set", "tad.bogus=1"], "options: tad.bogus: unknown key (allowed: num_latents"),
        (
            "cond",
            ["--metrics", "tad", "--set", "tda.folds=3"],
            "options: tda: not a requested metric (tad) nor data or sampler; did you mean 'tad'?",
        ),
        ("cond", ["--metrics", "tad", "--set", "tad.auroc_threshold=2"], "options: tad: the AUROC threshold must be in [0.5, 1]"),
        ("cond", ["--metrics", "tad", "--steps", "3"], "options: sampler: none of the requested metrics (tad) generates images"),
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
