"""experiments/ holds the reproduction entry points the docs' numbers come from: each is a module of
the ``experiments`` package that runs as ``python experiments/NAME.py``, answers ``--help``, says
what it reproduces, accepts every command the docs quote, is clean under ruff, and runs end to end
on a tiny budget writing only under its ``--out``."""

from __future__ import annotations

import importlib
import json
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import protodiff
from protodiff.explain.coupling import OneModeWarning
from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig
from protodiff.provenance import code_version

ROOT = Path(__file__).parent.parent
SCRIPTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if p.stem != "__init__")
BIN = Path(sys.executable).parent

#: patronus-shapes (the shapes attributes every script reads) cut to seconds.
TINY = [
    "data.image_size=16",
    "data.num_train=64",
    "data.num_test=48",
    "model.denoiser.base_channels=16",
    "model.denoiser.channel_mult=[1,2]",
    "model.conditioner.prototype_layer.num_prototypes=6",
    "train.steps=3",
    "train.batch_size=8",
    "train.warmup_steps=0",
    "train.log_every=1",
    "train.checkpoint_every=3",
    "sample.sampler={name: ddim, steps: 2}",
]


def module(name: str):
    return importlib.import_module(f"experiments.{name}")


def test_every_script_is_listed_in_the_readme_and_the_package():
    readme, package = (ROOT / "experiments" / "README.md").read_text(), module("__init__").__doc__ or ""
    for name in SCRIPTS:
        assert f"`{name}.py`" in readme and f"``{name}``" in package, name


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_answers_help_and_says_what_it_reproduces(name, monkeypatch, capsys):
    doc = module(name).__doc__ or ""
    assert "Reproduces" in doc and f"python experiments/{name}.py" in doc
    monkeypatch.setattr(sys, "argv", [f"experiments/{name}.py", "--help"])
    with pytest.raises(SystemExit) as stop:  # as `python experiments/NAME.py --help` runs it
        runpy.run_path(str(ROOT / "experiments" / f"{name}.py"), run_name="__main__")
    output = capsys.readouterr().out
    assert stop.value.code == 0 and "usage:" in output and "--out" in output


def quoted_commands() -> list[tuple[str, str]]:
    """(file, command) for every ``python experiments/NAME.py ...`` in docs/ and experiments/README.md:
    lines of code blocks, and spans in backticks (which may wrap)."""
    found = []
    for path in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "experiments" / "README.md", ROOT / "README.md"]:
        text = path.read_text()
        spans = re.findall(r"`(python experiments/[^`]+)`", text)
        lines = re.findall(r"^(python experiments/.+)$", text, flags=re.MULTILINE)
        found += [(str(path.relative_to(ROOT)), " ".join(command.split("#")[0].split())) for command in spans + lines]
    return found


def test_the_docs_quote_experiments():
    assert {command.split()[1] for _, command in quoted_commands()} >= {
        "experiments/local_concepts.py",
        "experiments/edit_methods.py",
    }


@pytest.mark.parametrize(("source", "command"), quoted_commands())
def test_every_command_the_docs_quote_parses(source, command):
    words = shlex.split(command)
    name = Path(words[1]).stem
    args = module(name).arguments().parse_args(words[2:])
    if name == "local_concepts":
        assert set(args.variants) <= set(module(name).VARIANTS), command


def test_experiments_are_clean_under_ruff():
    ruff = str(BIN / "ruff")
    for check in (["check"], ["format", "--check"]):
        result = subprocess.run([ruff, *check, "experiments"], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr


#: mypy's default (non-strict) checks, imports followed for their types only: pyproject.toml's
#: [tool.mypy] is strict and lists the public API alone.
MYPY = "[mypy]\npython_version = 3.11\nfollow_imports = silent\n\n[mypy-tqdm.*]\nignore_missing_imports = True\n"


@pytest.mark.slow
def test_experiments_are_clean_under_mypy(tmp_path):
    (tmp_path / "mypy.ini").write_text(MYPY)
    command = [str(BIN / "mypy"), "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run([*command, "experiments"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny Patronus run on shapes and an attribute classifier for its data."""
    root = tmp_path_factory.mktemp("experiments")
    config = protodiff.load_experiment("patronus-shapes", TINY)
    protodiff.train(config, root / "run", device="cpu")
    train = config.data.build().open("train")
    judge = AttributeClassifier.for_dataset(train, ClassifierConfig(widths=(8,), steps=2, seed=0))
    judge.fit(train)
    judge.save(root / "judge")
    return root / "run", root / "judge"


def files(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_mtime_ns for p in directory.rglob("*")}


@pytest.fixture
def isolated(inputs, tmp_path, monkeypatch):
    """Runs the script from an empty working directory, then checks that it wrote nothing there
    nor into its inputs: only ``tmp_path / "out"``."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = {path: files(path) for path in inputs}
    yield tmp_path / "out"
    assert not list(cwd.iterdir()), f"wrote outside --out: {list(cwd.iterdir())}"
    assert {path: files(path) for path in inputs} == before


def smoke(name: str, out: Path, inputs: tuple[Path, Path]) -> list[str]:
    run, judge = map(str, inputs)
    return {
        "local_concepts": ["baseline", "oracle", "--set", *TINY, "--judge-steps", "2", "--recon-images", "4"]
        + ["--recon-steps", "2", "--out", str(out)],
        "edit_methods": [run, "--classifier", judge, "--images", "2", "--amounts", "0.3", "--steps", "2"]
        + ["--fit-images", "16", "--fit-steps", "3", "--out", str(out)],
        "steering": [
            run,
            "--classifier",
            judge,
            "--levers",
            "plain,guide3+group,match2+lower,regress+scale+lower+hold300,regress+keepmarks+from300,split1,regress+given+amount+inject200,regress+given+local2+focus+guide1.5,mode+lower,regress+given+detgroup",
        ]
        + ["--calibrate", "2", "--images", "2", "--sampler", "ddim", "--steps", "3", "--out", str(out)],
        "exponential_stages": [run, "--classifier", judge, "--images", "2", "--steps", "30", "--out", str(out)],
        "counterfactual": [run, "--classifier", judge, "--calibrate", "2", "--images", "6", "--out", str(out)],
        "condition_value": [run, "--images", "4", "--out", str(out)],
        "localisation": [run, "--images", "2", "--sources", "centre;df-rise:num_masks=10,batch_size=5", "--out", str(out)],
        "emergence": [run, "--names", "x-s0", "--classifier", judge, "--images", "2", "--steps", "3", "--starts", "2"]
        + ["--table", "--out", str(out)],
    }[name]


WRITES = {
    "local_concepts": {"results.jsonl", "baseline-s0", "oracle-s0", "judges"},
    "edit_methods": {"results.json"},
    "steering": {"results.jsonl"},
    "counterfactual": {"results.jsonl"},
    "exponential_stages": {"results.json"},
    "condition_value": {"results.json"},
    "localisation": {"results.jsonl"},
    "emergence": {"x-s0"},
}


@pytest.mark.parametrize("name", SCRIPTS)
def test_each_script_runs_on_a_tiny_budget_writing_only_under_its_out(name, inputs, isolated, capsys):
    module(name).main(smoke(name, isolated, inputs))
    assert {p.name for p in isolated.iterdir()} == WRITES[name]
    assert capsys.readouterr().out.strip()
    code = code_version()  # every result says which code produced it
    for path in isolated.rglob("results.json*"):
        rows = (
            [json.loads(line) for line in path.read_text().splitlines()]
            if path.suffix == ".jsonl"
            else [json.loads(path.read_text())]
        )
        assert rows and all(row["code"] == code for row in rows), path
    if name == "steering":  # each result says which sampler inverted and regenerated, when not the run's
        results = [json.loads(line) for line in (isolated / "results.jsonl").read_text().splitlines()]
        assert [r["sampler"] for r in results] == [{"name": "ddim", "steps": 3}] * 10
    if name == "counterfactual":  # every global attribute, each row on the images that lack it
        results = [json.loads(line) for line in (isolated / "results.jsonl").read_text().splitlines()]
        assert [r["attribute"] for r in results] == ["dark_bg", "warm_cast", "gradient"]
        assert any(r["images"] for r in results)
        for r in results:
            assert len(r["rows"]) == ((8 + bool(r["pairs"])) if r["images"] else 0)
            assert all(0 <= row["leakage"] <= 1 for row in r["rows"].values())
    if name == "local_concepts":  # the oracle was registered for the command only; the table reads OUT
        assert "oracle-judge" not in protodiff.registries().conditioner
        module(name).main(["--table", "--out", str(isolated)])
        table = capsys.readouterr().out
        assert "baseline" in table and "oracle" in table


def test_a_script_runs_as_a_file():
    result = subprocess.run(
        [sys.executable, "experiments/condition_value.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "python experiments/condition_value.py RUN" in result.stdout, result.stderr


@pytest.mark.parametrize("follow", ["matched", "rescaled"])
def test_matched_and_rescaled_following_move_a_dimension_as_it_moves_between_images_that_read_alike(follow):
    """steering.py's ``match`` and ``scale`` levers: where dimension 1 rises with dimension 0 twice
    as fast on images with dimension 2 on as on those with it off, an edit of dimension 0 moves
    dimension 1 by that image's own slope (a regression would move both by the average), and holds
    dimension 2. ``match`` finds the slope among the images that read alike; ``scale`` from how the
    spread of dimension 1 widens with dimension 0 (an image above the line stays as far above it,
    in units of the spread)."""
    steering = module("steering")
    generator = torch.Generator().manual_seed(0)
    edited = torch.rand(4000, generator=generator)
    mark = (torch.rand(4000, generator=generator) > 0.5).float()
    reference = torch.stack([edited, edited * (1 + mark), mark], dim=1)
    probe = object.__new__(steering.Steering)
    probe.vectors = reference
    covariance = torch.cov(reference.T)
    probe.slopes = covariance / covariance.diagonal()[None, :]
    images = torch.tensor([[0.2, 0.2, 0.0], [0.2, 0.4, 1.0]])
    moved = (
        probe.matched(images, 0, torch.tensor(0.8), k=5) if follow == "matched" else probe.rescaled(images, 0, torch.tensor(0.8))
    )
    assert moved[:, 0].tolist() == pytest.approx([0.8, 0.8])
    assert (moved[:, 1] - images[:, 1]).tolist() == pytest.approx([0.6, 1.2], abs=0.08)
    # held, up to the sampling noise of its regression slope on dimension 0 (about 0, over 4000 images)
    assert moved[:, 2].tolist() == pytest.approx([0.0, 1.0], abs=0.05)


def test_the_mode_lever_moves_by_the_difference_between_a_prototypes_extreme_mode_and_the_rest():
    """steering.py's ``mode``: a dimension that reads 0.5 on images without a concept and, on those
    with it, 0.1 or 0.2 (the concept under two other conditions: three modes). Lowered, every image
    moves by the lowest mode's mean vector minus the rest's (the mixture finds the three modes, not
    two); raised, by the highest mode's (no concept) minus the rest's; a dimension with one mode
    gives no shift to speak of."""
    steering = module("steering")
    generator = torch.Generator().manual_seed(0)
    concept = torch.rand(3000, generator=generator) > 0.5
    other = torch.rand(3000, generator=generator) > 0.5
    noise = torch.randn(3000, 2, generator=generator) * 0.01
    first = torch.where(concept, torch.where(other, 0.1, 0.2), 0.5)
    probe = object.__new__(steering.Steering)
    probe.vectors = torch.stack([first, 2 * concept.float()], dim=1) + noise
    lowest = probe.vectors[concept & other].mean(dim=0) - probe.vectors[~(concept & other)].mean(dim=0)
    torch.testing.assert_close(probe.mode_shift(0, lower=True), lowest, atol=0.02, rtol=0)
    raised = probe.vectors[~concept].mean(dim=0) - probe.vectors[concept].mean(dim=0)  # the highest mode: no concept
    torch.testing.assert_close(probe.mode_shift(0, lower=False), raised, atol=0.02, rtol=0)
    probe.vectors = torch.randn(3000, 2, generator=generator)  # one mode: nothing to move towards
    with pytest.warns(OneModeWarning):
        assert not probe.mode_shift(0, lower=True).any()


def test_the_given_lever_follows_with_the_other_attributes_detectors_held():
    """steering.py's ``given``: a warm cast that comes with a light background in the data. Raising
    the warm detector (dimension 0), a plain regression moves a second light prototype (dimension 1)
    too, because warm images are mostly light; with the light detector (dimension 2, the best by
    AUROC) held, that prototype stays and another warm prototype (dimension 3) still follows."""
    steering = module("steering")
    generator = torch.Generator().manual_seed(0)
    warm = (torch.rand(4000, generator=generator) > 0.5).float()
    light = (torch.rand(4000, generator=generator) < torch.where(warm > 0, 0.9, 0.3)).float()
    noise = torch.randn(4000, 4, generator=generator) * torch.tensor([0.05, 0.3, 0.05, 0.3])
    probe = object.__new__(steering.Steering)
    probe.vectors = torch.stack([warm, light, light, warm], dim=1) + noise
    probe.labels, probe.names = torch.stack([warm, light], dim=1), ["warm", "light"]
    covariance = torch.cov(probe.vectors.T)
    probe.slopes = covariance / covariance.diagonal()[None, :]
    probe.median, probe.high, probe.low = probe.vectors.median(dim=0).values, torch.ones(4), torch.zeros(4)
    images = torch.tensor([[0.0, 0.2, 0.1, 0.0]])
    plain = probe.target(images, [0], steering.Lever.parse("regress"))
    assert plain[0, 1] - images[0, 1] > 0.5  # the light prototype follows the warm one through the data's coupling
    assert probe.detectors() == [0, 2] and probe.given_for(0) == (2,)
    given = probe.target(images, [0], steering.Lever.parse("regress+given"))
    torch.testing.assert_close(given[0], torch.tensor([1.0, 0.2, 0.1, 1.0]), atol=0.05, rtol=0)
    # ``local``: raised to its maximum among the 100 images nearest in the light detector, the
    # library's local maximum, and followed as with ``given``.
    from protodiff.explain.coupling import local_quantile

    local = probe.target(images, [0], steering.Lever.parse("regress+given+local"))
    assert local[0, 0] == local_quantile(probe.vectors, images, 0, (2,), 100)[0] != probe.high[0]
    assert local[0, 2] == images[0, 2] and local[0, 3] - images[0, 3] > 0.5


def test_the_detgroup_lever_raises_the_library_detection_group_with_the_edited_dimension():
    """steering.py's ``detgroup``: two triangle prototypes, each on half the triangles, are raised
    together whichever is edited (the library's ``detection_group`` on the labels); a dimension of
    no group is raised alone."""
    steering = module("steering")
    generator = torch.Generator().manual_seed(0)
    triangle, half = (torch.rand(2, 2000, generator=generator) < 0.5).unbind(0)
    noise = 0.1 * torch.randn(2000, 3, generator=generator)
    probe = object.__new__(steering.Steering)
    probe.vectors = torch.stack([(triangle & half).float(), (triangle & ~half).float(), torch.zeros(2000)], dim=1) + noise
    probe.labels, probe.names = triangle[:, None].long(), ["triangle"]
    probe.median, probe.high, probe.low = torch.zeros(3), torch.ones(3), -torch.ones(3)
    assert probe.detection_group_of(0) == probe.detection_group_of(1) and sorted(probe.detection_group_of(1)) == [0, 1]
    assert probe.detection_group_of(2) == [2]
    images = torch.zeros(1, 3)
    assert probe.target(images, probe.detection_group_of(0), steering.Lever.parse("plain")).tolist() == [[1.0, 1.0, 0.0]]


def test_steering_reports_the_standard_errors_of_success_and_leakage_over_images():
    """Leakage is a mean of per-image shares of flipped attributes, so its standard error takes the
    image as the unit: two images flipping both others and two flipping none is a leakage of 0.5 with
    a standard error of 0.29 (not the 0.18 of eight independent flips)."""
    steering = module("steering")
    probe = object.__new__(steering.Steering)
    probe.names = ["edited", "one", "two"]
    before = torch.tensor([[0.0, 0.0, 0.0]] * 4 + [[1.0, 0.0, 0.0]])  # the last image has the attribute already
    after = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    success, leakage, lacking = probe.success_leakage(after, before, 0)
    assert (success, leakage, lacking) == (0.75, 0.5, 4)
    success_se, leakage_se = probe.standard_errors(after, before, 0)
    assert success_se == pytest.approx(0.5 / 2) and leakage_se == pytest.approx(0.57735 / 2, abs=1e-4)


def test_the_counterfactual_linear_map_recovers_a_planted_affine_map():
    """counterfactual.py's oracle per-image correction: fitted on pairs related by an affine map
    (plus a little noise), it maps new conditions as that map does."""
    counterfactual = module("counterfactual")
    generator = torch.Generator().manual_seed(0)
    weights, offset = torch.randn(4, 4, generator=generator), torch.randn(4, generator=generator)
    source = torch.randn(400, 4, generator=generator)
    target = source @ weights + offset + 0.01 * torch.randn(400, 4, generator=generator)
    new = torch.randn(8, 4, generator=generator)
    torch.testing.assert_close(counterfactual.linear_map(source, target)(new), new @ weights + offset, atol=0.01, rtol=0)
