"""Checkpoints: a directory that is complete or absent, and that never runs code when loaded.

Layout::

    step_000500/
      config.yaml          the resolved experiment config (rebuilds the model)
      model.safetensors    weights; metadata holds the condition names
      ema.safetensors      EMA weights, when training keeps them
      train_state.pt       optimizer, scheduler, step and RNG states (torch.load weights_only=True)

A run directory holds ``config.yaml``, ``log.jsonl`` and ``checkpoints/step_*``; anything that
takes a checkpoint also takes a run directory and uses its newest *intact* checkpoint: one whose
config parses and whose safetensors headers parse and describe exactly the bytes on disk (what a
truncated or torn copy breaks), checked without reading the tensors. A damaged newer checkpoint is
skipped with a one-line :class:`~protodiff.errors.ProtodiffWarning`; resuming further needs a
training state that loads with ``weights_only``. Old checkpoints are deleted only once a newer one
has been re-read from disk and verified.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from protodiff.config import dump_yaml, read_yaml
from protodiff.devices import resolve_device
from protodiff.errors import CheckpointError, ProtodiffError, ProtodiffWarning
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


def _is_checkpoint_dir(path: Path) -> bool:
    return (path / MODEL_FILE).is_file() or (path.is_dir() and _STEP_DIR.match(path.name) is not None)


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory (refused in one line when damaged), or the newest intact checkpoint of
    a run directory (a damaged newer one is skipped with a one-line warning)."""
    path = Path(path)
    if _is_checkpoint_dir(path):
        problem = checkpoint_damage(path)
        if problem is not None:
            raise CheckpointError(f"{path}: unusable checkpoint ({problem}); pass its run directory to use the newest intact one")
        return path
    if list_checkpoints(path):
        return newest_intact(path)[0]
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint or run directory")
    raise CheckpointError(f"{path}: not a checkpoint (no {MODEL_FILE}) and holds no checkpoints/step_* directories")


def newest_intact(run_dir: str | Path, *, resumable: bool = False) -> tuple[Path, dict[str, Any] | None]:
    """The newest intact checkpoint of a run and, with ``resumable``, its training state (loaded
    here, as the check that it loads safely). Damaged newer checkpoints are skipped with one
    warning line naming the newest of them and why; none intact is a one-line CheckpointError."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise CheckpointError(f"{run_dir}: holds no checkpoints/step_* directories")
    skipped: list[tuple[Path, str]] = []
    for checkpoint in reversed(checkpoints):
        problem = checkpoint_damage(checkpoint)
        state = None
        if problem is None and resumable:
            try:
                state = load_train_state(checkpoint)
            except CheckpointError as exc:
                problem = str(exc).removeprefix(f"{checkpoint}/")
        if problem is None:
            if skipped:
                newest, why = skipped[0]
                more = f" ({len(skipped) - 1} more damaged skipped)" if len(skipped) > 1 else ""
                warnings.warn(
                    f"{newest} is unusable ({why}); using {checkpoint.name}, the newest intact checkpoint{more}",
                    ProtodiffWarning,
                    stacklevel=2,
                )
            return checkpoint, state
        skipped.append((checkpoint, problem))
    newest, why = skipped[0]
    raise CheckpointError(f"{run_dir}: no usable checkpoint; the newest, {newest.name}: {why}")


#: Bytes per element of each safetensors dtype.
_DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "U16": 2,
    "I16": 2,
    "F16": 2,
    "BF16": 2,
    "U32": 4,
    "I32": 4,
    "F32": 4,
    "U64": 8,
    "I64": 8,
    "F64": 8,
}


def weights_damage(path: Path) -> str | None:
    """Why a safetensors file is not intact (None: it is), from its header alone: the header must
    parse, every tensor's byte range must hold exactly its dtype x shape, and the ranges must tile
    the data to the last byte of the file. Truncation, a torn copy or a damaged header all break
    one of these; reading the header costs the same whatever the model's size."""
    name = path.name
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= size - 8:
                return f"{name}: truncated ({size} bytes, no complete safetensors header)"
            header = json.loads(handle.read(length))
    except FileNotFoundError:
        return f"{name} is missing"
    except OSError as exc:
        return f"{name}: unreadable ({exc.strerror})"
    except (UnicodeDecodeError, json.JSONDecodeError):
        return f"{name}: its header is not JSON"
    if not isinstance(header, dict):
        return f"{name}: its header is not a mapping"
    spans = []
    for key, info in header.items():
        if key == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
            nbytes = math.prod(int(d) for d in shape) * _DTYPE_BYTES[dtype]
        except (TypeError, KeyError, ValueError):
            return f"{name}: tensor {key!r} has a malformed header entry"
        if not (isinstance(begin, int) and isinstance(end, int)) or end - begin != nbytes:
            return f"{name}: tensor {key!r} spans {begin}..{end}, not the {nbytes} bytes of {dtype} {shape}"
        spans.append((begin, end))
    offset = 0
    for begin, end in sorted(spans):
        if begin != offset:
            return f"{name}: its tensors' byte ranges overlap or leave gaps"
        offset = end
    expected = 8 + length + offset
    if expected != size:
        return f"{name}: {size} bytes, its header describes {expected} ({'truncated' if size < expected else 'trailing bytes'})"
    names = (header.get("__metadata__") or {}).get(CONDITION_NAMES_KEY)
    if names is not None and not _string_list(names):
        return f"{name}: metadata {CONDITION_NAMES_KEY!r} is not a JSON list of names"
    return None


def _string_list(text: str) -> bool:
    try:
        value = json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return False
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def checkpoint_damage(checkpoint: Path) -> str | None:
    """Why a checkpoint directory is not intact for loading its model (None: it is): its config.yaml
    parses, and each weights file in it passes :func:`weights_damage`."""
    try:
        read_config(checkpoint)
    except ProtodiffError as exc:
        return " ".join(str(exc).removeprefix(f"{checkpoint}/").split())
    for name in (MODEL_FILE, EMA_FILE, PRIOR_FILE):
        if name == MODEL_FILE or (checkpoint / name).exists():
            problem = weights_damage(checkpoint / name)
            if problem is not None:
                return problem
    return None


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


def prune_checkpoints(run_dir: str | Path, keep: int, newest: str | Path) -> None:
    """Delete the checkpoints older than ``newest`` (just written) beyond the ``keep - 1`` newest
    intact ones, but only once ``newest`` has been re-read from disk and verified (weights, config
    and a training state that loads with ``weights_only``); one that does not verify deletes
    nothing and is reported in one warning line. Checkpoints newer than ``newest`` (a damaged one
    a resume skipped) are left alone: the run writes over them as it reaches their step."""
    newest = Path(newest)
    problem = checkpoint_damage(newest)
    if problem is None:
        try:
            load_train_state(newest)
        except CheckpointError as exc:
            problem = str(exc)
    if problem is not None:
        warnings.warn(
            f"{newest} does not verify after writing ({problem}); no older checkpoint deleted", ProtodiffWarning, stacklevel=2
        )
        return
    step = checkpoint_step(newest)
    kept = 1
    for old in reversed([c for c in list_checkpoints(run_dir) if checkpoint_step(c) < step]):
        if kept < keep and checkpoint_damage(old) is None:
            kept += 1
            continue
        shutil.rmtree(old, ignore_errors=True)


def read_config(checkpoint: Path) -> ExperimentConfig:
    path = checkpoint / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint}: incomplete checkpoint, {CONFIG_FILE} is missing")
    return experiment_from_dict(read_yaml(path), source=str(path))


def _refusal_reason(exc: BaseException) -> str:
    """What torch's weights-only unpickler objected to, without any of torch's advice around it
    (re-running with ``weights_only=False``, allow-listing the global: the things never to do with
    a file someone handed you)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    sentences = re.split(r"(?<=\.)\s+|\n+", text)
    advice = (
        "weights only",
        "weights_only",
        "safe_globals",
        "please",
        "trust",
        "documentation",
        "re-running",
        "pytorch 2.6",
        "can still be loaded",
        "file an issue",
    )
    kept = [s.strip() for s in sentences if s.strip() and not any(a in s.lower() for a in advice)]
    return " ".join(" ".join(kept).split())[:200].rstrip(".") or "an object that is not a tensor or plain container"


def _check_train_state(state: Any, path: Path) -> dict[str, Any]:
    """The keys a resume reads, with their types; anything else is a one-line CheckpointError."""
    expected = {"step": int, "optimizer": dict, "scheduler": dict, "rng": list}
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a training state (a {type(state).__name__}, not a mapping)")
    for key, kind in expected.items():
        if key not in state:
            raise CheckpointError(f"{path}: training state lacks {key!r}")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise CheckpointError(f"{path}: training state {key!r} is a {type(state[key]).__name__}, not a {kind.__name__}")
    if not all(isinstance(r, dict) and {"generator", "torch"} <= set(r) for r in state["rng"]):
        raise CheckpointError(f"{path}: training state 'rng' lacks a process's generator or torch state")
    return state


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
            f"missing {missing[:3]}"
            if missing
            else f"unexpected {unexpected[:3]}"
            if unexpected
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's note on a pickle protocol it did not write
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only" not in str(exc).lower():
            raise CheckpointError(f"{path}: damaged training state ({_refusal_reason(exc)})") from None
        raise CheckpointError(
            f"{path}: refused: it is not made only of tensors and plain data ({_refusal_reason(exc)}), and unpickling "
            "the rest could run code; protodiff never loads such a file: resume from a checkpoint you wrote, or start anew"
        ) from None
    except Exception as exc:  # a truncated or torn file: torch's zip reader or unpickler gives up
        raise CheckpointError(f"{path}: damaged training state ({' '.join(str(exc).split()).split('. ')[0][:160]})") from None
    return _check_train_state(state, path)


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


def model_and_experiment(
    run_or_model: str | os.PathLike[str] | ConditionedDiffusion,
    experiment: ExperimentConfig | None = None,
    *,
    device: str | torch.device = "auto",
    use_ema: bool = True,
    action: str = "evaluating",
) -> tuple[ConditionedDiffusion, ExperimentConfig, str | None, str]:
    """(model, experiment, checkpoint directory or None, ``ema``/``raw``/``in memory``) for a run, a
    checkpoint, or a model in memory: what :func:`protodiff.evaluate` and :func:`protodiff.explain`
    accept. A model in memory needs its ``experiment`` (the config :func:`load_model` returned);
    a checkpoint's own config is used unless ``experiment`` is given."""
    if isinstance(run_or_model, ConditionedDiffusion):
        if experiment is None:
            raise ProtodiffError(f"{action} a model in memory needs its experiment (the config load_model returned)")
        return run_or_model, experiment, None, "in memory"
    path = resolve_checkpoint(run_or_model)
    model, saved = load_model(path, device=resolve_device(str(device)), use_ema=use_ema)
    weights = "ema" if use_ema and (path / EMA_FILE).is_file() else "raw"
    return model, experiment or saved, str(path.resolve()), weights
