"""``protodiff explain``: every registered explainer is a subcommand with the same options; the
dfx explainers on a conditional and a plain model."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_OVERRIDES
from safetensors.torch import load_file

from protodiff import registries
from protodiff._registry.registry import registering_as
from protodiff.cli import main
from protodiff.contracts.explainer import Explainer, Explanation

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


def test_edit_follows_by_regression_when_asked_and_a_bad_setting_is_one_line(runs, tmp_path):
    """``--set follow=regression``: the other dimensions follow the edited one (fitted on the split's
    reference images), recorded in meta.json and in the saved edited vectors."""
    run = runs["patronus"]
    common = ["--to", "proto_00=0.5", "--n", "2", "--set", "sampler.steps=2", "--set", "reference=16"]
    invoke("explain", "edit", run, *common, "--set", "follow=regression", "--out", str(tmp_path / "follow"))
    meta = json.loads((tmp_path / "follow" / "meta.json").read_text())
    tensors = load_file(str(tmp_path / "follow" / "tensors.safetensors"))
    assert meta["follow"] == "regression" and (tensors["edited_vectors"][:, 0] == 0.5).all()
    assert not torch.allclose(tensors["edited_vectors"][:, 1:], tensors["vectors"][:, 1:])
    out = invoke("explain", "edit", run, *common, "--set", "follow=sideways", code=2)
    assert out.count("\n") == 1 and "follow" in out
    # ``given``: the named dimension is regressed on and held, the rest still follow.
    given = ["--set", "follow=regression", "--set", "given=[proto_01]", "--out", str(tmp_path / "given")]
    invoke("explain", "edit", run, *common, *given)
    meta = json.loads((tmp_path / "given" / "meta.json").read_text())
    held = load_file(str(tmp_path / "given" / "tensors.safetensors"))
    assert meta["given"] == ["proto_01"] and torch.equal(held["edited_vectors"][:, 1], held["vectors"][:, 1])
    assert not torch.allclose(held["edited_vectors"][:, 2:], held["vectors"][:, 2:])
    out = invoke("explain", "edit", run, *common, "--set", "follow=regression", "--set", "given=[proto_0x]", code=2)
    assert out.count("\n") == 1 and "proto_0x" in out
    # ``mode``: the whole vector moves by the edited dimension's mode shift over the reference
    # images; this untrained model's proto_00 has one mode over 16, so the edit says it moves nothing.
    out = invoke("explain", "edit", run, *common, "--set", "follow=mode", "--out", str(tmp_path / "mode"))
    meta = json.loads((tmp_path / "mode" / "meta.json").read_text())
    moved = load_file(str(tmp_path / "mode" / "tensors.safetensors"))
    assert meta["follow"] == "mode" and "dimension 0 has one mode over the 16 reference images" in out
    assert torch.equal(moved["edited_vectors"], moved["vectors"])


def test_edit_to_max_is_the_plausible_maximum_or_the_local_one(runs, tmp_path):
    """``--to NAME=max`` sets the dimension to its maximum over the reference images, the same on
    every image; with ``neighbours`` and ``given``, to its maximum among the images nearest each one
    in the given dimensions: one value per image, none above the global one."""
    run = runs["patronus"]
    common = ["--to", "proto_00=max", "--n", "3", "--set", "sampler.steps=2", "--set", "reference=16"]
    invoke("explain", "edit", run, *common, "--out", str(tmp_path / "max"))
    meta = json.loads((tmp_path / "max" / "meta.json").read_text())
    top = torch.tensor(meta["after"]["proto_00"])
    assert meta["changes"][0]["value"] == "max" and (top == top[0]).all()
    assert top[0] == meta["observed_range"]["proto_00"][1]
    local = [*common, "--set", "follow=regression", "--set", "given=[proto_01,proto_02]", "--set", "neighbours=3"]
    invoke("explain", "edit", run, *local, "--out", str(tmp_path / "local"))
    meta = json.loads((tmp_path / "local" / "meta.json").read_text())
    near = torch.tensor(meta["after"]["proto_00"])
    assert meta["neighbours"] == 3 and (near <= top).all() and not torch.equal(near, top)
    assert (tmp_path / "local" / "edit.png").is_file()
    out = invoke("explain", "edit", run, *common, "--set", "neighbours=3", code=2)
    assert out.count("\n") == 1 and "given=[" in out
    out = invoke("explain", "edit", run, "--shift", "proto_00=max", "--n", "1", code=2)
    assert out.count("\n") == 1 and "'max' is not a number" in out


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


EDIT = ["--set", "sampler.steps=3"]


def test_edit_sets_shifts_and_sweeps_named_dimensions_deterministically(runs, tmp_path):
    for out in ("a", "b"):
        invoke(
            "explain",
            "edit",
            runs["patronus"],
            "--n",
            "2",
            "--seed",
            "3",
            "--out",
            str(tmp_path / out),
            *EDIT,
            "--to",
            "proto_01=2.5",
            "--shift",
            "proto_02=+0.5",
            "--sweep",
            "proto_00=0:1:3",
        )
    tensors = load_file(str(tmp_path / "a" / "tensors.safetensors"))
    assert tensors["edited"].shape == tensors["images"].shape == tensors["reconstructed"].shape
    assert tensors["sweep.proto_00"].shape == (2, 3, *tensors["images"].shape[1:])
    assert torch.equal(tensors["edited"], load_file(str(tmp_path / "b" / "tensors.safetensors"))["edited"])
    assert (tensors["edited_vectors"][:, 1] == 2.5).all()
    assert torch.allclose(tensors["edited_vectors"][:, 2], tensors["vectors"][:, 2] + 0.5)
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["changes"][0] == {"dimension": "proto_01", "value": 2.5, "shift": False}
    assert set(meta["observed_range"]) == {"proto_00", "proto_01", "proto_02"}
    assert {p.name for p in (tmp_path / "a").glob("*.png")} == {"edit.png", "sweep_proto_00.png"}


def test_edit_warns_about_values_far_outside_the_observed_range(runs, tmp_path):
    result = CliRunner().invoke(
        main, ["explain", "edit", runs["patronus"], "--n", "1", *EDIT, "--to", "proto_01=1000", "--out", str(tmp_path / "e")]
    )
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and "observed on real images [" in result.stderr


def test_edit_errors_are_one_line(runs):
    out = invoke("explain", "edit", runs["patronus"], "--to", "proto_1=3", code=2)
    assert out.count("\n") == 1 and "did you mean 'proto_01'" in out
    assert "nothing to change" in invoke("explain", "edit", runs["patronus"], code=2)
    assert "START:STOP:COUNT" in invoke("explain", "edit", runs["patronus"], "--sweep", "proto_00=0:3", code=2)
    assert "unconditional" in invoke("explain", "edit", runs["plain"], "--to", "0=1", code=2)


def test_interpolate_pairs_images_and_ends_at_their_reconstructions(runs, tmp_path):
    invoke("explain", "interpolate", runs["patronus"], "--n", "4", *EDIT, "--set", "steps=3", "--out", str(tmp_path / "i"))
    frames = load_file(str(tmp_path / "i" / "tensors.safetensors"))["frames"]
    assert frames.shape[:2] == (2, 3) and torch.isfinite(frames).all()
    meta = json.loads((tmp_path / "i" / "meta.json").read_text())
    assert meta["pairs"] == [[0, 1], [2, 3]] and meta["weights"] == [0.0, 0.5, 1.0]
    assert "two images" in invoke("explain", "interpolate", runs["patronus"], "--n", "1", code=2)


def test_slerp_keeps_the_ends_and_the_norm_of_orthogonal_noise():
    from protodiff.explain.edit import slerp

    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    assert torch.allclose(slerp(a, b, 0.5).norm(), torch.tensor(1.0))


def test_effects_and_shortcuts_from_the_command_line_need_a_matching_classifier(runs, tmp_path):
    from protodiff.checkpoint import load_model
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    data = load_model(runs["patronus"])[1].data.build().open("test")
    AttributeClassifier.for_dataset(data, ClassifierConfig(widths=(4,))).save(tmp_path / "judge")
    common = ["--n", "2", "--set", "sampler.steps=2", "--set", "reference=4", "--classifier", str(tmp_path / "judge")]
    invoke("explain", "effects", runs["patronus"], "--out", str(tmp_path / "effects"), *common)
    assert len(json.loads((tmp_path / "effects" / "meta.json").read_text())["suggestions"]) == 5
    output = invoke("explain", "shortcuts", runs["patronus"], "--out", str(tmp_path / "shortcuts"), *common)
    assert "protodiff: warning: with 2 images only effects above 1.00 can be told from noise" in output
    report = json.loads((tmp_path / "shortcuts" / "shortcuts.json").read_text())
    assert (
        report["threshold"] == 0.1
        and report["images"] == 2
        and all(c["train_correlation"] is not None for c in report["couplings"])
    )
    AttributeClassifier(["smiling"], 3, 32, ClassifierConfig(widths=(4,))).save(tmp_path / "other")
    output = invoke("explain", "effects", runs["patronus"], "--classifier", str(tmp_path / "other"), code=2)
    assert "the classifier judges ['smiling']" in output and len(output.strip().splitlines()) == 1


def test_prototypes_gallery_boxes_the_turned_up_prototype_deterministically(runs, tmp_path):
    args = [
        "explain",
        "prototypes",
        runs["patronus"],
        "--n",
        "2",
        *EDIT,
        "--set",
        "reference=12",
        "--prototypes",
        "proto_01",
        "--prototypes",
        "3",
    ]
    for out in ("a", "b"):
        invoke(*args, "--seed", "2", "--out", str(tmp_path / out))
    tensors = load_file(str(tmp_path / "a" / "tensors.safetensors"))
    side = tensors["images"].shape[-1]
    assert tensors["regenerated"].shape == tensors["crops"].shape == (2, 2, 3, side, side)
    assert tensors["before"].shape == tensors["after"].shape == (2, 2) and tensors["boxes"].shape == (2, 2, 4)
    boxes = tensors["boxes"]
    assert (boxes[..., :2] >= 0).all() and (boxes[..., 2:] <= side).all() and (boxes[..., 2:] > boxes[..., :2]).all()
    assert torch.equal(tensors["regenerated"], load_file(str(tmp_path / "b" / "tensors.safetensors"))["regenerated"])
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert [entry["prototype"] for entry in meta["prototypes"]] == ["proto_01", "proto_03"]
    assert set(meta["prototypes"][0]) == {"prototype", "index", "target", "before", "after", "boxes", "nearest"}
    assert meta["prototypes"][0]["target"] == pytest.approx(float(tensors["targets"][1]))
    assert (tmp_path / "a" / "gallery.png").read_bytes()[:4] == b"\x89PNG"
    # Followed by regression (fitted on the same reference images): the other prototypes move too.
    invoke(*args, "--set", "follow=regression", "--seed", "2", "--out", str(tmp_path / "follow"))
    followed = load_file(str(tmp_path / "follow" / "tensors.safetensors"))["regenerated"]
    assert not torch.allclose(followed, tensors["regenerated"], atol=1e-5)
    # ``given`` is honoured too: proto_00 held, the followers regressed on it as well.
    given = ["--set", "follow=regression", "--set", "given=[proto_00]", "--seed", "2", "--out", str(tmp_path / "given")]
    invoke(*args, *given)
    held = load_file(str(tmp_path / "given" / "tensors.safetensors"))["regenerated"]
    assert not torch.allclose(held, followed, atol=1e-5)
    # A DiffAE direction moves every dimension: nothing is left to follow.
    out = invoke("explain", "attribute-edit", runs["patronus"], "--set", "follow=regression", code=2)
    assert out.count("\n") == 1 and "follow must be 'none'" in out


def test_prototypes_refuses_a_model_without_prototypes_in_one_line(runs):
    out = invoke("explain", "prototypes", runs["plain"], code=2)
    assert out.count("\n") == 1 and "prototype" in out
    assert "did you mean" in invoke("explain", "prototypes", runs["patronus"], "--prototypes", "proto_1", code=2)


def test_classifier_train_then_an_explainer_that_judges_attributes_receives_it(runs, tmp_path):
    from protodiff.metrics.attribute_classifier import AttributeClassifier

    data = ["--set", "data.num_train=32", "--set", "data.num_test=8", "--set", "data.image_size=16"]
    out = invoke(
        "classifier",
        "train",
        "--data",
        "ddpm-shapes",
        *data,
        "--set",
        "classifier.steps=2",
        "--set",
        "classifier.widths=[4]",
        "--seed",
        "1",
        "--out",
        str(tmp_path / "judge"),
    )
    assert "accuracy on test: red_square" in out
    assert AttributeClassifier.load(tmp_path / "judge").config.seed == 1
    planted = invoke(
        "classifier",
        "train",
        "--data",
        "ddpm-shapes",
        *data,
        "--set",
        "classifier.steps=1",
        "--set",
        "data.shortcut={a: red_square, b: dark_bg}",
        "--out",
        str(tmp_path / "shared"),
    )
    assert "red_square and dark_bg are correlated in train (r = +1.00)" in planted
    assert "only data.KEY" in invoke(
        "classifier", "train", "--data", "ddpm-shapes", "--set", "train.steps=1", "--out", str(tmp_path / "x"), code=2
    )

    class Judge(Explainer):
        """Mean attribute probabilities of the images (a throw-away explainer that judges attributes)."""

        def explain(self, model, batch, *, classifier, generator=None):
            return Explanation("judge", {"p": classifier.predict_proba(batch)}, {"seeded": generator is not None})

    with registering_as("tests-judge"):
        registries().explainer.add("judge-test", Judge)
    try:
        assert "--classifier" in invoke("explain", "judge-test", "--help")
        assert "--classifier" not in invoke("explain", "df-rise", "--help")
        assert "pass --classifier" in invoke("explain", "judge-test", runs["plain"], code=2)
        invoke(
            "explain",
            "judge-test",
            runs["plain"],
            "--n",
            "2",
            "--classifier",
            str(tmp_path / "judge"),
            "--out",
            str(tmp_path / "j"),
        )
        assert load_file(str(tmp_path / "j" / "tensors.safetensors"))["p"].shape == (2, 8)
        assert json.loads((tmp_path / "j" / "meta.json").read_text())["seeded"] is True
        AttributeClassifier(["a", "b"], 3, 16).save(tmp_path / "other")
        out = invoke("explain", "judge-test", runs["plain"], "--classifier", str(tmp_path / "other"), code=2)
        assert out.count("\n") == 1 and "the classifier judges ['a', 'b']" in out
    finally:
        registries().remove_plugin("tests-judge")


def test_an_explainer_asking_for_an_unknown_input_is_a_registration_error():
    from protodiff.errors import RegistrationError

    class Greedy(Explainer):
        def explain(self, model, batch, *, everything):
            raise AssertionError("never called")

    with pytest.raises(RegistrationError, match="asks for 'everything'"):
        Greedy.inputs()


def test_an_explainer_sets_how_many_images_it_explains_by_default():
    def default_n(name: str) -> str:
        help_text = CliRunner().invoke(main, ["explain", name, "--help"]).output
        return " ".join(help_text.split()).split("Explain the first N images of the split. [default: ")[1].split(";")[0]

    assert default_n("edit") == "8"
    assert default_n("shortcuts") == "128"  # a significance test over images needs them


def test_explain_is_one_library_call_that_the_command_makes(runs, tmp_path):
    """``protodiff.explain`` gives what the command writes, from a run or a model in memory, and
    leaves the caller's global RNG as it found it."""
    import protodiff

    invoke(
        "explain",
        "edit",
        runs["patronus"],
        "--n",
        "2",
        "--seed",
        "3",
        "--out",
        str(tmp_path / "cli"),
        *EDIT,
        "--to",
        "proto_01=2.5",
    )
    state = torch.random.get_rng_state()
    options = {"sampler": {"steps": 3}, "to": ["proto_01=2.5"]}
    explanation = protodiff.explain(runs["patronus"], "edit", images=2, options=options, seed=3, device="cpu")
    assert torch.equal(torch.random.get_rng_state(), state)
    assert explanation.images == 2 and isinstance(explanation, protodiff.Explanation)
    assert torch.equal(explanation.tensors["edited"], load_file(str(tmp_path / "cli" / "tensors.safetensors"))["edited"])
    model, config = protodiff.load_model(runs["patronus"], device="cpu")
    batch = torch.stack([config.data.build().open("test")[i][0] for i in range(2)])
    in_memory = protodiff.explain(model, "edit", images=batch, options=options, seed=3, experiment=config)
    assert torch.equal(in_memory.tensors["edited"], explanation.tensors["edited"])
    with pytest.raises(protodiff.errors.ConfigError, match="explain edit: bogus: unknown key"):
        protodiff.explain(model, "edit", options={"bogus": 1}, experiment=config)
