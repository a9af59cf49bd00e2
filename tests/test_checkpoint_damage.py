"""A damaged latest checkpoint does not strand a run: loading falls back to the newest intact one
with one warning line, ``--resume`` resumes from it bit for bit, and a checkpoint is deleted only
after a newer one has been verified."""

from __future__ import annotations

import json
import pickle
import warnings

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from protodiff import checkpoint as ckpt
from protodiff.cli import main
from protodiff.errors import CheckpointError, ProtodiffWarning
from protodiff.training import Trainer

RESUMABLE = ("model.denoiser.dropout=0.2", "train.checkpoint_every=3", "train.keep_checkpoints=2")


def truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def same_weights(a, b) -> bool:
    a, b = load_file(str(a)), load_file(str(b))
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def run(tiny_config, tmp_path):
    """A six-step run with checkpoints at steps 3 and 6."""
    Trainer(tiny_config(*RESUMABLE, "train.steps=6"), tmp_path / "run", device="cpu", progress=False).fit()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step_0000003", "step_0000006"]
    return tmp_path / "run"


def test_header_checks_find_truncation_trailing_bytes_and_a_bad_header(run):
    weights = run / "checkpoints" / "step_0000006" / ckpt.MODEL_FILE
    assert ckpt.weights_damage(weights) is None
    data = weights.read_bytes()
    weights.write_bytes(data + b"\0")
    assert "trailing bytes" in ckpt.weights_damage(weights)
    weights.write_bytes(data[:-1])
    assert "truncated" in ckpt.weights_damage(weights)
    weights.write_bytes(data[:5])
    assert "no complete safetensors header" in ckpt.weights_damage(weights)
    weights.write_bytes(data[:8] + b"x" + data[9:])
    assert "header is not JSON" in ckpt.weights_damage(weights)
    weights.unlink()
    assert "missing" in ckpt.weights_damage(weights)


def test_loading_a_run_falls_back_to_the_newest_intact_checkpoint_with_one_warning(run):
    truncate(run / "checkpoints" / "step_0000006" / ckpt.MODEL_FILE)
    with pytest.warns(ProtodiffWarning) as caught:
        model, _ = ckpt.load_model(run, use_ema=False)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "\n" not in message and "step_0000006 is unusable (model.safetensors:" in message
    assert "truncated" in message and "using step_0000003, the newest intact checkpoint" in message
    expected = load_file(str(run / "checkpoints" / "step_0000003" / ckpt.MODEL_FILE))
    assert all(torch.equal(v, expected[k]) for k, v in ckpt._state_for_safetensors(model).items())
    with pytest.raises(CheckpointError, match=r"step_0000006: unusable checkpoint \(model.safetensors: .*truncated"):
        ckpt.load_model(run / "checkpoints" / "step_0000006")  # named explicitly: refused, not replaced
    truncate(run / "checkpoints" / "step_0000003" / ckpt.EMA_FILE)
    with pytest.raises(CheckpointError, match=r"no usable checkpoint; the newest, step_0000006: model.safetensors"):
        ckpt.load_model(run)


def test_a_damaged_config_or_names_metadata_counts_as_damage(run):
    latest = run / "checkpoints" / "step_0000006"
    (latest / ckpt.CONFIG_FILE).write_text("model: {denoiser: [\n")
    assert ckpt.checkpoint_damage(latest).startswith("config.yaml: line")
    with pytest.warns(ProtodiffWarning, match="step_0000006 is unusable"):
        assert ckpt.resolve_checkpoint(run).name == "step_0000003"


@pytest.mark.parametrize("command", [["sample", "--n", "2", "--out", "{tmp}/s.png"], ["encode", "--out", "{tmp}/s.npz"]])
def test_commands_warn_in_one_line_and_use_the_intact_checkpoint(run, tmp_path, command):
    truncate(run / "checkpoints" / "step_0000006" / ckpt.MODEL_FILE)
    args = [command[0], str(run), *(a.format(tmp=tmp_path) for a in command[1:]), "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("protodiff: warning:")]
    assert len(lines) == 1 and "using step_0000003" in lines[0]
    assert "Traceback" not in result.output and "UserWarning" not in result.output


@pytest.mark.parametrize("damage", ["weights", "train_state", "unsafe_train_state"])
def test_resume_skips_a_damaged_latest_checkpoint_and_continues_bit_for_bit(tiny_config, tmp_path, damage):
    """Nine steps cross an epoch (64 images, batches of 8), so the uninterrupted run preloads the
    split and the resumed one (six steps left) does not: the batches and RNG draws must agree."""
    straight = Trainer(tiny_config(*RESUMABLE, "train.steps=9"), tmp_path / "a", device="cpu", progress=False).fit()
    Trainer(tiny_config(*RESUMABLE, "train.steps=6"), tmp_path / "b", device="cpu", progress=False).fit()
    latest = tmp_path / "b" / "checkpoints" / "step_0000006"
    if damage == "weights":
        truncate(latest / ckpt.MODEL_FILE)
    elif damage == "train_state":
        truncate(latest / ckpt.STATE_FILE)
    else:
        (latest / ckpt.STATE_FILE).write_bytes(pickle.dumps({"step": print}, protocol=2))
    with pytest.warns(ProtodiffWarning, match="step_0000006 is unusable .*using step_0000003") as caught:
        trainer = Trainer(tiny_config(*RESUMABLE, "train.steps=9"), tmp_path / "b", device="cpu", resume=True, progress=False)
    if damage == "unsafe_train_state":
        message = str(caught[0].message)
        assert "refused: it is not made only of tensors" in message and "weights_only" not in message
    assert trainer.step == 3
    resumed = trainer.fit()
    assert resumed.name == straight.name == "step_0000009"
    for name in (ckpt.MODEL_FILE, ckpt.EMA_FILE):
        assert same_weights(straight / name, resumed / name), name
    # the damaged step 6 was written over when the run reached it again, and pruned as usual
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "b")] == ["step_0000006", "step_0000009"]
    assert ckpt.checkpoint_damage(tmp_path / "b" / "checkpoints" / "step_0000006") is None


def test_nothing_is_pruned_until_a_newer_checkpoint_verifies(run):
    older, newest = ckpt.list_checkpoints(run)
    truncate(newest / ckpt.STATE_FILE)
    with pytest.warns(ProtodiffWarning, match="does not verify after writing .*no older checkpoint deleted"):
        ckpt.prune_checkpoints(run, 1, newest)
    assert ckpt.list_checkpoints(run) == [older, newest]


def test_pruning_keeps_intact_checkpoints_and_leaves_newer_ones_alone(run, tiny_config):
    _older, middle = ckpt.list_checkpoints(run)
    truncate(middle / ckpt.MODEL_FILE)  # a damaged checkpoint between the kept one and the new one
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProtodiffWarning)
        Trainer(tiny_config(*RESUMABLE, "train.steps=9"), run, device="cpu", resume=True, progress=False).fit()
    names = [p.name for p in ckpt.list_checkpoints(run)]
    assert names == ["step_0000006", "step_0000009"]  # step 6 rewritten intact; step 3 pruned after 9 verified
    newer = run / "checkpoints" / "step_0000012"
    newer.mkdir()
    ckpt.prune_checkpoints(run, 1, run / "checkpoints" / "step_0000009")
    assert [p.name for p in ckpt.list_checkpoints(run)] == ["step_0000009", "step_0000012"]


def test_a_truncated_training_state_is_reported_as_damage(run):
    latest = run / "checkpoints" / "step_0000006"
    truncate(latest / ckpt.STATE_FILE)
    with pytest.raises(CheckpointError, match=r"train_state.pt: damaged training state \(") as info:
        ckpt.load_train_state(latest)
    assert "\n" not in str(info.value)
    torch.save({"step": 1}, latest / ckpt.STATE_FILE)
    with pytest.raises(CheckpointError, match="training state lacks 'optimizer'"):
        ckpt.load_train_state(latest)
    (latest / ckpt.STATE_FILE).write_text(json.dumps({"step": 1}))  # not a torch file at all
    with pytest.raises(CheckpointError, match="refused: it is not made only of tensors and plain data"):
        ckpt.load_train_state(latest)
