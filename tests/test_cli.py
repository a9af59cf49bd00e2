"""The command line end to end: train, sample, config, and how errors look."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest import TINY_OVERRIDES
from PIL import Image

from protodiff.cli import main
from protodiff.figures import GROUP_GAP, MARGIN


def sets(*overrides: str) -> list[str]:
    return [arg for o in (*TINY_OVERRIDES, *overrides) for arg in ("--set", o)]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    result = CliRunner().invoke(main, ["train", "ddpm-shapes", *sets(), "--out", str(run), "--seed", "3", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "trained to step 6" in result.output
    return run


def test_train_writes_the_resolved_config_with_the_seed(trained_run):
    assert "seed: 3" in (trained_run / "config.yaml").read_text()


def test_sample_writes_a_png_grid_and_is_seeded(trained_run, tmp_path):
    outs = []
    for name in ("a.png", "b.png"):
        out = tmp_path / name
        result = CliRunner().invoke(
            main, ["sample", str(trained_run), "--n", "4", "--steps", "3", "--out", str(out), "--seed", "1", "--device", "cpu"]
        )
        assert result.exit_code == 0, result.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    with Image.open(tmp_path / "a.png") as image:  # 2x2 grid of 16 px images shown at 96 px, under a title
        assert image.size == (2 * MARGIN + 2 * 96 + GROUP_GAP, 2 * MARGIN + 24 + 2 * 96 + GROUP_GAP)


def test_summary_writes_one_page_beside_the_run(trained_run):
    result = CliRunner().invoke(main, ["summary", str(trained_run), "--n", "2", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with Image.open(trained_run / "summary.png") as page:
        assert page.width > 4 * 96  # samples and the training loss, side by side


@pytest.mark.parametrize("sampler", ["ddpm", "dpm-solver++"])
def test_sample_with_another_sampler(trained_run, tmp_path, sampler):
    result = CliRunner().invoke(
        main, ["sample", str(trained_run), "--n", "2", "--sampler", sampler, "--steps", "3", "--out", str(tmp_path / "s.png")]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sample", "/nonexistent/run"], "/nonexistent/run: no such checkpoint or run directory"),
        (["train", "/nonexistent.yaml"], "/nonexistent.yaml: no such config file"),
        (["train", "ddpm-shapes", "--set", "train.stepz=3"], "train.stepz: unknown key (did you mean 'steps'?)"),
        (["train", "ddpm-shapes", "--device", "cuda:7"], "CUDA is not available"),
        (["sample", "RUN", "--sampler", "nope"], "unknown sampler 'nope'"),
        (["sample", "RUN", "--sampler", "dpm-solver++", "--eta", "0.5"], "eta: unknown key"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(trained_run, args, message, monkeypatch, tmp_path):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    args = [str(trained_run) if a == "RUN" else a for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("protodiff: error:")]
    assert len(lines) == 1 and "Traceback" not in result.output


def test_debug_shows_the_traceback():
    result = CliRunner().invoke(main, ["--debug", "sample", "/nonexistent/run"])
    assert result.exit_code != 0 and result.exception is not None


def test_config_command_prints_the_resolved_config():
    result = CliRunner().invoke(main, ["config", "ddpm-shapes", "--set", "train.steps=7"])
    assert result.exit_code == 0
    assert "steps: 7" in result.output and "channel_mult: [1, 2, 2]" in result.output
