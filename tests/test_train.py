from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from protodiff import checkpoint as ckpt
from protodiff.errors import CheckpointError, TrainingDiverged
from protodiff.provenance import code_version
from protodiff.training import Trainer, TrainingInterrupted


def weights(path):
    return load_file(str(path))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_training_lowers_the_loss_and_writes_complete_checkpoints(tiny_config, tmp_path):
    config = tiny_config(
        "train.steps=30",
        "train.lr=2e-3",
        "train.checkpoint_every=10",
        "train.keep_checkpoints=2",
        "model.diffusion.prediction=eps",
    )
    final = Trainer(config, tmp_path / "run", device="cpu", progress=False).fit()
    assert final.name == "step_0000030"
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step_0000020", "step_0000030"]
    assert {p.name for p in final.iterdir()} == {"config.yaml", "model.safetensors", "ema.safetensors", "train_state.pt"}
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    start, log = records[0], records[1:]
    assert start["event"] == "start" and start["precision"] in ("fp32", "bf16") and start["precision_reason"]
    assert start["code"] == code_version() and start["threads"] == torch.get_num_threads()  # what a retrain must match
    assert [r["step"] for r in log] == list(range(1, 31))
    first, last = sum(r["loss"] for r in log[:5]) / 5, sum(r["loss"] for r in log[-5:]) / 5
    assert last < 0.7 * first
    assert (tmp_path / "run" / "loss.png").is_file() and (tmp_path / "run" / "samples" / "step_0000030.png").is_file()
    assert not any(p.name.startswith(".") for p in (tmp_path / "run" / "checkpoints").iterdir())


def test_resume_continues_bit_for_bit(tiny_config, tmp_path):
    overrides = ("model.denoiser.dropout=0.2", "train.checkpoint_every=3")  # dropout exercises the global RNG
    straight = Trainer(tiny_config(*overrides, "train.steps=6"), tmp_path / "a", device="cpu", progress=False).fit()
    Trainer(tiny_config(*overrides, "train.steps=3"), tmp_path / "b", device="cpu", progress=False).fit()
    resumed = Trainer(tiny_config(*overrides, "train.steps=6"), tmp_path / "b", device="cpu", resume=True, progress=False).fit()
    assert resumed.name == straight.name == "step_0000006"
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same_weights(weights(straight / name), weights(resumed / name))


def test_epochs_set_the_length_of_a_run(tiny_config, tmp_path):
    trainer = Trainer(tiny_config("train.steps=null", "train.epochs=2"), tmp_path / "run", device="cpu", progress=False)
    assert trainer.total_steps == 2 * (64 // 8)


def test_runs_are_not_overwritten_and_resume_needs_a_matching_checkpoint(tiny_config, tmp_path):
    with pytest.raises(CheckpointError, match="nothing to resume"):
        Trainer(tiny_config(), tmp_path / "run", device="cpu", resume=True, progress=False)
    Trainer(tiny_config("train.steps=3"), tmp_path / "run", device="cpu", progress=False).fit()
    with pytest.raises(CheckpointError, match="already holds checkpoints; pass --resume"):
        Trainer(tiny_config(), tmp_path / "run", device="cpu", progress=False)
    with pytest.raises(CheckpointError, match="cannot resume: model differs"):
        Trainer(tiny_config("model.denoiser.dropout=0.3"), tmp_path / "run", device="cpu", resume=True, progress=False)


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny_config, tmp_path):
    config = tiny_config("train.lr=1e30", "train.grad_clip=null", "train.checkpoint_every=1", "train.ema_decay=null")
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at step \d+ .*last good checkpoint: .*step_\d+") as info:
        Trainer(config, tmp_path / "run", device="cpu", progress=False).fit()
    assert "\n" not in str(info.value)
    kept = ckpt.list_checkpoints(tmp_path / "run")
    assert kept and all(torch.isfinite(t).all() for t in weights(kept[-1] / "model.safetensors").values())


def test_a_failed_checkpoint_write_leaves_no_partial_directory(tiny_config, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config("train.steps=3"), tmp_path / "run", device="cpu", progress=False)
    trainer.fit()
    before = ckpt.list_checkpoints(tmp_path / "run")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    trainer.step = 4
    with pytest.raises(OSError, match="disk full"):
        trainer.save()
    assert ckpt.list_checkpoints(tmp_path / "run") == before
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [p.name for p in before]


def test_interrupting_saves_the_current_step_for_resume(tiny_config, tmp_path, monkeypatch):
    trainer = Trainer(tiny_config("train.checkpoint_every=100"), tmp_path / "run", device="cpu", progress=False)
    real_step = trainer.train_step

    def step_then_interrupt(x0):
        if trainer.step == 2:
            raise KeyboardInterrupt
        return real_step(x0)

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 2; .*continue with --resume"):
        trainer.fit()
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "run")] == ["step_0000002"]
    resumed = Trainer(tiny_config("train.checkpoint_every=100"), tmp_path / "run", device="cpu", resume=True, progress=False)
    assert resumed.step == 2


def test_ema_warms_up_then_decays_at_the_configured_rate():
    from protodiff.training import ema_with_warmup

    update = ema_with_warmup(0.999)
    mean, flag = torch.zeros(3), torch.tensor(False)
    update([mean, flag], [torch.ones(3), torch.tensor(True)], torch.tensor(1))
    assert torch.allclose(mean, torch.full((3,), 1 - 2 / 11)) and flag.item()  # decay (1+1)/(10+1) at first
    late = torch.zeros(1)
    update([late], [torch.ones(1)], torch.tensor(100000))
    assert late.item() == pytest.approx(0.001)


def test_lr_multipliers_give_each_module_its_own_learning_rate(tiny_config):
    from protodiff.config import parse
    from protodiff.errors import ProtodiffError
    from protodiff.experiment import TrainConfig
    from protodiff.model import ConditionedDiffusion
    from protodiff.training import parameter_groups

    model = ConditionedDiffusion.from_experiment(tiny_config())
    train = parse(TrainConfig, {"lr": 1e-3, "lr_multipliers": {"denoiser": 0.5, "denoiser.head": 2.0}})
    groups = parameter_groups(model, train)
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["denoiser.head.2.weight"])] == pytest.approx(2e-3)  # the longest prefix wins
    assert lr_of[id(named["denoiser.stem.weight"])] == pytest.approx(5e-4)
    assert all(lr_of[id(p)] == pytest.approx(1e-3) for n, p in named.items() if not n.startswith("denoiser"))
    assert sum(len(g["params"]) for g in groups) == len(named)
    with pytest.raises(ProtodiffError, match="no parameter name starts with 'denoser'"):
        parameter_groups(model, parse(TrainConfig, {"lr_multipliers": {"denoser": 2.0}}))


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_continues_bit_for_bit_in_either_precision(tiny_config, tmp_path, precision):
    overrides = (f"train.precision={precision}", "train.checkpoint_every=3", "train.preload=always")
    straight = Trainer(tiny_config(*overrides, "train.steps=6"), tmp_path / "a", device="cpu", progress=False).fit()
    Trainer(tiny_config(*overrides, "train.steps=3"), tmp_path / "b", device="cpu", progress=False).fit()
    resumed = Trainer(tiny_config(*overrides, "train.steps=6"), tmp_path / "b", device="cpu", resume=True, progress=False).fit()
    for name in ("model.safetensors", "ema.safetensors"):
        assert_same_weights(weights(straight / name), weights(resumed / name))


def test_the_chosen_precision_is_recorded_and_kept_on_resume(tiny_config, tmp_path, monkeypatch):
    import protodiff.devices as devices
    from protodiff.config import read_yaml

    monkeypatch.setattr(devices, "native_bf16", lambda device: True)
    Trainer(tiny_config("train.steps=3"), tmp_path / "run", device="cpu", progress=False).fit()
    assert read_yaml(tmp_path / "run" / "config.yaml")["train"]["precision"] == "bf16"
    assert "natively" in json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[0])["precision_reason"]
    monkeypatch.setattr(devices, "native_bf16", lambda device: False)  # the same run resumed elsewhere
    resumed = Trainer(tiny_config("train.steps=6"), tmp_path / "run", device="cpu", resume=True, progress=False)
    assert resumed.precision.name == "bf16" and "resumed" in resumed.precision.reason
    assert Trainer(tiny_config("train.steps=3"), tmp_path / "new", device="cpu", progress=False).precision.name == "fp32"


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    import protodiff.devices as devices

    cpu = torch.device("cpu")
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert devices.resolve_precision("auto", cpu).name == "fp32"
    assert "emulated" in devices.resolve_precision("bf16", cpu).reason
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert devices.resolve_precision("auto", cpu).name == "bf16"
    assert devices.resolve_precision("fp32", cpu).name == "fp32"


def test_a_config_from_before_precision_existed_still_loads():
    from protodiff.config import to_dict
    from protodiff.experiment import experiment_from_dict, load_experiment

    data = to_dict(load_experiment("ddpm-shapes"))
    del data["train"]["precision"]
    assert experiment_from_dict({**data, "train": {**data["train"], "amp": True}}).train.precision == "auto"
    assert experiment_from_dict({**data, "train": {**data["train"], "amp": False}}).train.precision == "fp32"


def test_preloaded_batches_are_the_batches_a_loader_serves(tiny_config):
    from protodiff.training.batches import TrainingBatches, read_all, should_preload

    config = tiny_config()
    dataset = config.data.build().open("train")
    loaded = TrainingBatches(dataset, local_batch=8, seed=3)
    preloaded = TrainingBatches(dataset, local_batch=8, seed=3, images=read_all(dataset))
    for step in (0, 5, 9):  # from the start, mid-epoch and in the second epoch (8 steps each)
        a, b = loaded.from_step(step), preloaded.from_step(step)
        for _ in range(10):
            assert torch.equal(next(a), next(b))
    assert should_preload(dataset, config.train, steps=8)  # one epoch: read once
    assert not should_preload(dataset, config.train, steps=2)  # a quarter epoch: reading all costs more


def test_compile_without_a_compiler_warns_and_trains_eagerly(tiny_config, tmp_path, monkeypatch):
    import protodiff.training.trainer as trainer_module
    from protodiff.errors import ProtodiffWarning

    monkeypatch.setattr(trainer_module.shutil, "which", lambda name: None)
    with pytest.warns(ProtodiffWarning, match="no C\\+\\+ compiler"):
        trainer = Trainer(tiny_config("train.compile=true", "train.steps=2"), tmp_path / "run", device="cpu", progress=False)
    assert trainer.compiled is False and trainer.network is trainer.model
    trainer.fit()


def test_ema_update_matches_a_per_tensor_lerp():
    from protodiff.training import ema_with_warmup

    generator = torch.Generator().manual_seed(0)
    means = [torch.randn(5, generator=generator), torch.randn(2, 3, generator=generator)]
    values = [torch.randn(5, generator=generator), torch.randn(2, 3, generator=generator)]
    expected = [m.clone().lerp_(v, 1 - min(0.999, 8 / 17)) for m, v in zip(means, values)]
    ema_with_warmup(0.999)(means, values, torch.tensor(7))
    for got, want in zip(means, expected):
        assert torch.equal(got, want)
