"""Checkpoints: a directory that is complete or absent, and that never runs code when loaded.

Layout::

    step_000500/
      config.yaml          the resolved experiment config (rebuilds the model)
      model.safetensors    weights; metadata holds the condition names
      ema.safetensors      EMA weights, when training keeps them
      train_state.pt       optimizer, scheduler, step and RNG states (torch.load weights_only=True)

A run directory holds ``config.yaml``, ``log.jsonl`` and ``checkpoints/step_*``; anything that
takes a checkpoint also takes a run directory and uses its latest checkpoint.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from protodiff.config import dump_yaml, read_yaml
from protodiff.errors import CheckpointError, ProtodiffError
from protodiff.experiment import ExperimentConfig, experiment_from_dict
from protodiff.io import atomic_path, write_text
from protodiff.model import ConditionedDiffusion

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.safetensors"
EMA_FILE = "ema.safetensors"
STATE_FILE = "train_state.pt"
#: The latent prior, fitted after training on this checkpoint's frozen conditioner.
PRIOR_FILE = "prior.safetensors"
CHECKPOINTS_DIR = "checkpoints"
#: model.safetensors metadata key holding the JSON list of condition-dimension names.
CONDITION_NAMES_KEY = "condition_names"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def checkpoint_step(checkpoint: Path) -> int:
    """The training step a ``step_*`` checkpoint directory was written at."""
    match = _STEP_DIR.match(Path(checkpoint).name)
    if match is None:
        raise CheckpointError(f"{checkpoint}: not a step_* checkpoint directory")
    return int(match.group(1))


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporaries never match the pattern)."""
    directory = Path(run_dir) / CHECKPOINTS_DIR
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if _STEP_DIR.match(p.name) and p.is_dir()]
    return sorted(found, key=checkpoint_step)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or the latest checkpoint of a run directory."""
    path = Path(path)
    if (path / MODEL_FILE).is_file():
        return path
    checkpoints = list_checkpoints(path)
    if checkpoints:
        return checkpoints[-1]
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    raise CheckpointError(f"{path}: not a checkpoint (no {MODEL_FILE}) and holds no checkpoints/step_* directories")


def _state_for_safetensors(module: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors stores contiguous row-major tensors; channels_last weights are copied to it.
    # An attached prior lives in its own file (it is fitted later, on the frozen model).
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items() if not k.startswith("prior.")}


def save_checkpoint(
    directory: str | Path,
    *,
    model: ConditionedDiffusion,
    config: ExperimentConfig,
    ema: nn.Module | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint directory atomically (replacing one of the same name only when complete)."""
    directory = Path(directory)
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        (tmp / CONFIG_FILE).write_text(dump_yaml(config))
        metadata = {CONDITION_NAMES_KEY: json.dumps(model.conditioner.names)}
        save_file(_state_for_safetensors(model), str(tmp / MODEL_FILE), metadata=metadata)
        if ema is not None:
            save_file(_state_for_safetensors(ema), str(tmp / EMA_FILE))
        if train_state is not None:
            torch.save(train_state, tmp / STATE_FILE)
    return directory


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def read_config(checkpoint: Path) -> ExperimentConfig:
    path = checkpoint / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint}: incomplete checkpoint, {CONFIG_FILE} is missing")
    return experiment_from_dict(read_yaml(path), source=str(path))


def read_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file (a format that cannot carry code)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        return load_file(str(path)), metadata
    except FileNotFoundError:
        raise CheckpointError(f"{path}: missing") from None
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{path}: unreadable weights file ({' '.join(str(exc).split())})") from None


def load_weights_into(module: nn.Module, path: Path) -> dict[str, str]:
    """Load a safetensors file into ``module`` strictly; a mismatch is a one-line CheckpointError."""
    state, metadata = read_weights(path)
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or reshaped:
        detail = (
            f"missing {missing[:3]}" if missing
            else f"unexpected {unexpected[:3]}" if unexpected
            else f"{reshaped[0]!r} has shape {tuple(state[reshaped[0]].shape)}, the model {tuple(own[reshaped[0]].shape)}"
        )
        raise CheckpointError(f"{path}: weights do not match the model its config.yaml builds: {detail}")
    module.load_state_dict(state, strict=True)
    return metadata


def load_train_state(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint}: no {STATE_FILE}, so training cannot resume from it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refuses anything but tensors and plain containers
        raise CheckpointError(f"{path}: cannot load training state safely ({' '.join(str(exc).split())[:200]})") from None


def load_model(
    path: str | Path, *, device: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[ConditionedDiffusion, ExperimentConfig]:
    """The model and config of a checkpoint (or a run's latest), EMA weights preferred when present."""
    checkpoint = resolve_checkpoint(path)
    config = read_config(checkpoint)
    try:
        model = ConditionedDiffusion.from_experiment(config)
    except ProtodiffError as exc:
        raise CheckpointError(f"{checkpoint}: cannot rebuild its model ({exc})") from None
    metadata = load_weights_into(model, checkpoint / MODEL_FILE)
    if use_ema and (checkpoint / EMA_FILE).is_file():
        load_weights_into(model, checkpoint / EMA_FILE)
    if CONDITION_NAMES_KEY in metadata:
        model.conditioner.names = json.loads(metadata[CONDITION_NAMES_KEY])
    if config.prior is not None and (checkpoint / PRIOR_FILE).is_file():
        prior = config.prior.build(dim=model.conditioner.dim)
        load_weights_into(prior, checkpoint / PRIOR_FILE)
        model.prior = prior
    return model.to(device).eval(), config


def set_condition_names(checkpoint: str | Path, names: list[str]) -> Path:
    """Rewrite a checkpoint's condition-dimension names (model.safetensors metadata), atomically."""
    checkpoint = resolve_checkpoint(checkpoint)
    state, metadata = read_weights(checkpoint / MODEL_FILE)
    with atomic_path(checkpoint / MODEL_FILE) as tmp:
        save_file(state, str(tmp), metadata={**metadata, CONDITION_NAMES_KEY: json.dumps(names)})
    return checkpoint


def save_prior(checkpoint: str | Path, prior: nn.Module, config: ExperimentConfig, info: dict[str, Any]) -> Path:
    """Store a fitted prior in ``checkpoint`` and record its spec in the checkpoint's config.yaml.

    ``config`` is the checkpoint's config with ``prior`` set; ``info`` (what it was fitted on, its
    final loss) goes into the weights file's metadata.
    """
    checkpoint = Path(checkpoint)
    with atomic_path(checkpoint / PRIOR_FILE) as tmp:
        save_file(_state_for_safetensors(prior), str(tmp), metadata={"fit": json.dumps(info)})
    write_text(checkpoint / CONFIG_FILE, dump_yaml(config))
    return checkpoint / PRIOR_FILE
