"""A conditional model through the command line: encode, fit-prior, sample from the prior, names."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_OVERRIDES

from protodiff.checkpoint import load_model
from protodiff.cli import main

PATRONUS = "model.conditioner={name: patronus, preset: test}"


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("conditional") / "run"
    overrides = [
        arg
        for o in (*TINY_OVERRIDES, PATRONUS, "data.image_size=32", "model.denoiser.channel_mult=[1,2]")
        for arg in ("--set", o)
    ]
    invoke("train", "ddpm-shapes", *overrides, "--out", str(path), "--device", "cpu")
    return path


def test_sampling_a_conditional_model_needs_conditions_or_a_prior(run, tmp_path):
    result = CliRunner().invoke(main, ["sample", str(run), "--out", str(tmp_path / "x.png")])
    assert result.exit_code == 2 and "has no latent prior" in result.output
    invoke("sample", str(run), "--condition-on", "test", "--n", "2", "--steps", "2", "--invert", "--out", str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").is_file()


def test_fit_prior_then_sample_from_nothing(run, tmp_path):
    output = invoke("fit-prior", str(run), "--set", "prior.preset=test", "--seed", "1")
    assert "fitted latent-ddpm on 64 vectors" in output
    model, config = load_model(run)
    assert model.prior is not None and config.prior.name == "latent-ddpm"
    invoke("sample", str(run), "--n", "3", "--steps", "2", "--out", str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").is_file()


def test_encode_writes_vectors_maps_and_labels(run, tmp_path):
    invoke("encode", str(run), "--limit", "5", "--out", str(tmp_path / "c.npz"))
    arrays = np.load(tmp_path / "c.npz")
    assert arrays["vector"].shape == (5, 5) and arrays["maps"].shape[:2] == (5, 5)
    assert arrays["attributes"].shape == (5, 8) and next(iter(arrays["names"])) == "proto_00"
    invoke("encode", str(run), "--limit", "5", "--out", str(tmp_path / "s.npy"))
    assert np.load(tmp_path / "s.npy").shape == (5, 5) and np.load(tmp_path / "s-maps.npy").shape[0] == 5


def test_names_are_set_and_kept_in_the_checkpoint(run):
    output = invoke("names", str(run), "1=red square", "4=stripes")
    assert "  1  red square" in output and "  0  proto_00" in output
    model, _ = load_model(run)
    assert model.conditioner.names[1] == "red square" and model.conditioner.names[4] == "stripes"
    result = CliRunner().invoke(main, ["names", str(run), "9=x"])
    assert result.exit_code == 2 and "index out of range" in result.output


def test_names_suggested_from_an_effect_matrix_are_shown_and_stored_only_when_asked(run, tmp_path):
    model, _ = load_model(run)
    k = model.conditioner.dim
    suggestions = [
        {"dimension": f"proto_{j:02d}", "index": j, "attribute": "dark_bg", "effect": 0.05, "consistency": 0.5} for j in range(k)
    ]
    suggestions[2] = {**suggestions[2], "attribute": "red_square", "effect": 0.7, "consistency": 0.9}
    suggestions[3] = {**suggestions[3], "attribute": "red_square", "effect": 0.4, "consistency": 0.8}
    (tmp_path / "effects").mkdir()
    (tmp_path / "effects" / "meta.json").write_text(json.dumps({"explainer": "effects", "suggestions": suggestions}))
    before = load_model(run)[0].conditioner.names
    output = invoke("names", str(run), "--suggest", str(tmp_path / "effects"))
    assert "-> red_square " in output and "(raising it: red_square +0.70, same direction on 90% of images)" in output
    assert load_model(run)[0].conditioner.names == before
    invoke("names", str(run), "--suggest", str(tmp_path / "effects"), "--apply")
    after = load_model(run)[0].conditioner.names
    assert after[2:4] == ["red_square", "red_square (2)"] and after[0] == before[0]  # 0.05 < --min-effect: unnamed
    (tmp_path / "effects" / "meta.json").write_text(json.dumps({"explainer": "effects", "suggestions": suggestions[:2]}))
    result = CliRunner().invoke(main, ["names", str(run), "--suggest", str(tmp_path / "effects")])
    assert result.exit_code != 0 and f"the effects cover 2 dimensions, this model has {k}" in result.output


def test_a_conditioner_that_declares_no_prior_needs_one_named(toy_conditioner):
    """Patronus declares latent-ddpm (see test_fit_prior_then_sample_from_nothing); the core names none."""
    from protodiff.errors import ProtodiffError
    from protodiff.priors import _declared_prior

    conditioner = toy_conditioner(toy_conditioner.Config(), in_channels=3, image_size=16)
    with pytest.raises(ProtodiffError, match="conditioner 'channel-means' declares no latent prior; name one with --prior"):
        _declared_prior(conditioner, "channel-means")


def test_names_from_detection_stand_beside_names_from_edits(run, tmp_path):
    """--detect: what each dimension separates on real images, as a judge calls them; an edit's
    evidence outranks it, and both are shown."""
    from protodiff.explain.naming import Detection, proposals
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    detected = [
        Detection(0, "dark_bg", 0.03),
        Detection(1, "red_square", 0.95),
        Detection(2, "red_square", 0.97),
        Detection(3, "gradient", 0.7),
    ]
    edits = [{"index": 1, "attribute": "blue_disc", "effect": 0.5, "consistency": 0.9}]
    assert proposals(4, edits, detected, min_effect=0.2, min_auroc=0.9) == {0: "no dark_bg", 1: "blue_disc", 2: "red_square"}
    model, config = load_model(run)
    train = config.data.build().open("train")
    judge = AttributeClassifier.for_dataset(train, ClassifierConfig(steps=2, batch_size=8))
    judge.fit(train)
    judge.save(tmp_path / "judge")
    output = invoke("names", str(run), "--detect", str(tmp_path / "judge"), "--images", "16", "--min-auroc", "0.5")
    lines = [line for line in output.splitlines() if "->" in line and line.split()[0].isdigit()]
    assert len(lines) == model.conditioner.dim and all(
        "detects: " in line and "AUROC" in line for line in lines if "(no evidence)" not in line
    )
    assert "concept groups" in output  # listed, or "none", after the dimensions
    # Per attribute the judge sees both ways on these images: its detector and the edit's ``given``.
    block, hint = output.split("attribute detectors")[1].split("an attribute none of these edits adds")
    block = block.splitlines()[1:]
    # Then the edit that adds a background on every run measured, for this run and judge.
    assert f"explain attribute-edit {run} --attribute NAME --classifier {tmp_path / 'judge'} --set direction=conditional" in hint
    assert block and all("AUROC" in line and "--set follow=regression --set given=[" in line for line in block)
    # Each line is an edit: the detector to its extreme (a "no" detector lowered), as --to says it.
    for line in block:
        *attribute, dimension = line.split("AUROC")[0].split()
        extreme = "min" if attribute[0] == "no" else "max"
        assert f"--to {dimension}={extreme} --set follow=regression" in line


def test_each_attribute_has_a_detector_either_way_round_and_an_edit_of_it_is_given_the_others():
    """From a (dimensions x attributes) AUROC table: a dimension's detection is its best-separated
    attribute either way round; an attribute's detector is the dimension that separates it best
    (a dark background by a light prototype's low values); an edit of one dimension is given, for
    each other attribute, the best dimension other than itself; an attribute the judge saw on all
    images or none (NaN) has no detector and is given nothing."""
    from protodiff.explain.naming import attribute_detectors, detections, given_for

    nan = float("nan")
    table = torch.tensor(
        [  # red, dark, warm, constant
            [0.98, 0.50, 0.55, nan],  # 0: red
            [0.52, 0.04, 0.80, nan],  # 1: light (no dark), also warm
            [0.50, 0.20, 0.90, nan],  # 2: warm
            [0.50, 0.50, 0.50, nan],  # 3: nothing
        ]
    )
    attributes = ["red", "dark", "warm", "constant"]
    assert [(d.attribute, d.name) for d in detections(table, attributes)] == [
        ("red", "red"),
        ("dark", "no dark"),
        ("warm", "warm"),
        ("red", "red"),  # ties at 0.5 separation: the first attribute, with no evidence to speak of
    ]
    assert [(d.index, d.name) for d in attribute_detectors(table, attributes)] == [(0, "red"), (1, "no dark"), (2, "warm")]
    assert given_for(table, 2, attributes.index("warm")) == [0, 1]  # red's and dark's detectors
    assert given_for(table, 1, attributes.index("dark")) == [0, 2]  # warm's best is 1 itself: the next, 2
    assert given_for(table, 1, attributes.index("warm")) == [0, 2]  # dark's best other than 1: dimension 2 (0.20)


def test_a_detection_group_joins_the_dimensions_that_each_detect_part_of_an_attribute():
    """Two uncorrelated dimensions that each fire on half of the triangles (AUROC ~0.75 each) are one
    detection group (together ~1.0); a noisier copy of a member adds nothing and stays out, as does a
    dimension that reads the triangles but the dark background better; two "no dark" dimensions,
    each on half the dark images, are a group read from the low end; an edit of a group is given
    the other attribute's best detector, never a member."""
    from protodiff.explain.naming import auroc_table, detection_group, given_for

    g = torch.Generator().manual_seed(0)
    n = 400
    triangle, half, dark = (torch.rand(3, n, generator=g) < 0.5).unbind(0)

    def noise():
        return 0.1 * torch.randn(n, generator=g)

    vectors = torch.stack(
        [
            (triangle & half).float() + noise(),  # 0: the triangles of one kind
            (triangle & ~half).float() + noise(),  # 1: the others
            (triangle & half).float() + 1.5 * noise(),  # 2: a noisier copy of 0
            0.25 * triangle.float() + 0.3 * dark.float() + 4 * noise(),  # 3: a little of both, dark more
            -(dark & half).float() + noise(),  # 4: light, where half the dark images are
            -(dark & ~half).float() + noise(),  # 5: light, where the others are
        ],
        dim=1,
    )
    calls = torch.stack([triangle, dark], dim=1)
    table = auroc_table(vectors, calls)
    assert float(table[:, 0].max()) < 0.8 and (table[3, 1] - 0.5).abs() > (table[3, 0] - 0.5).abs()
    triangles = detection_group(vectors, calls, table, 0)
    assert triangles.members == [1, 0] and triangles.separation > 0.99
    darks = detection_group(vectors, calls, table, 1)
    assert sorted(darks.members) == [4, 5] and darks.separation > 0.99
    assert given_for(table, triangles.members, 0) == [darks.members[0]]
    assert given_for(table, darks.members, 1) == [1]
    assert detection_group(vectors, calls, table, 0, gain=0.5).members == [1]  # a higher bar: the best alone


def test_concept_groups_join_correlated_dimensions_and_take_one_name():
    """Dimensions correlated above the threshold over real images are one group, transitively; the
    group is named by its members' proposals, counters dropped, disagreements both shown."""
    from protodiff.explain.naming import concept_groups, group_name

    g = torch.Generator().manual_seed(0)
    a, b, c = torch.randn(3, 500, generator=g)
    vectors = torch.stack([a, a + 0.3 * b, b, a + 0.3 * b + 0.3 * torch.randn(500, generator=g), c, -c], dim=1)
    assert concept_groups(vectors, 0.5) == [[0, 1, 3]]  # 5 = -4 excludes 4: not a group that fires together
    assert group_name([0, 1, 3], {0: "red_square", 1: "red_square (2)"}) == "red_square"
    assert group_name([0, 1], {0: "red_square", 1: "warm_cast"}) == "red_square / warm_cast"
    assert group_name([0, 1], {}) == "-"
