"""The training loop: AdamW, clipping, EMA, bf16 autocast where native, atomic checkpoints, exact
resume, DDP.

Determinism: the model is initialised from ``seed``; batch order comes from
:class:`~protodiff.training.batches.TrainingBatches` (seeded with ``seed`` and the epoch);
timesteps and noise come from a generator seeded per rank; dropout uses the global RNG. Every one
of these states is saved with each checkpoint, so on CPU a resumed run continues bit for bit (in
fp32 and in bf16 alike: the precision is recorded and kept).

Distributed: under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DDP over gloo (CPU)
or nccl (CUDA); ``train.batch_size`` is the global batch, split evenly over ranks. Only rank 0
writes files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from tqdm.auto import tqdm

from protodiff import checkpoint as ckpt
from protodiff.config import dump_yaml, read_yaml, to_dict
from protodiff.contracts.dataset import LabeledImages
from protodiff.devices import Precision, resolve_precision
from protodiff.errors import CheckpointError, DataError, ProtodiffError, ProtodiffWarning, TrainingDiverged
from protodiff.experiment import ExperimentConfig, experiment_from_dict
from protodiff.figures import plot_training_curve, save_image_grid
from protodiff.io import write_text
from protodiff.model import ConditionedDiffusion
from protodiff.provenance import code_version
from protodiff.training.batches import TrainingBatches, read_all, should_preload
from protodiff.training.distributed import Distributed, leave_process_group
from protodiff.training.optim import build_optimizer, ema_with_warmup, lr_lambda, total_steps

LOG_FILE = "log.jsonl"
PREVIEW_IMAGES = 16


class TrainingInterrupted(ProtodiffError):
    """Ctrl-C during training; a checkpoint of the current step was written."""


def _check_resumable(saved: ExperimentConfig, current: ExperimentConfig) -> None:
    """Refuse to resume a run whose data, model or seed changed (training settings may change)."""
    for key in ("seed", "data", "model"):
        old, new = to_dict(getattr(saved, key)), to_dict(getattr(current, key))
        if old != new:
            raise CheckpointError(
                f"cannot resume: {key} differs from the run's config.yaml; "
                "start a new run directory, or resume without changing it"
            )


def _compiler_missing() -> str | None:
    """Why ``torch.compile`` cannot build CPU kernels here (None: it can): inductor needs a C++
    compiler on the PATH."""
    if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):
        return None
    return "no C++ compiler (g++, c++ or clang++) on the PATH"


class Trainer:
    """Trains a :class:`ConditionedDiffusion` described by an :class:`ExperimentConfig` into ``run_dir``."""

    def __init__(
        self,
        config: ExperimentConfig,
        run_dir: str | Path,
        *,
        device: str = "auto",
        resume: bool = False,
        progress: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.ctx = Distributed.setup(device)
        self.progress = progress and self.ctx.is_main
        train = config.train
        if train.batch_size % self.ctx.world_size:
            raise ProtodiffError(
                f"train.batch_size={train.batch_size} does not split over {self.ctx.world_size} processes; "
                "use a multiple of the process count"
            )
        self.local_batch = train.batch_size // self.ctx.world_size
        self.precision = self._precision(config, resume)
        self.config = dataclasses.replace(config, train=dataclasses.replace(train, precision=self.precision.name))

        resume_from, resume_state = self._prepare_run_dir(resume)
        torch.manual_seed(config.seed)  # identical initial weights on every rank
        self.dataset = self._open_data()
        self.total_steps = total_steps(train, len(self.dataset))
        self.model = ConditionedDiffusion.from_experiment(config).to(self.ctx.device)
        self.optimizer = build_optimizer(self.model, train)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(train, self.total_steps))
        self.ema = (
            AveragedModel(self.model, multi_avg_fn=ema_with_warmup(train.ema_decay), use_buffers=True)
            if train.ema_decay is not None
            else None
        )
        self.generator = torch.Generator().manual_seed(config.seed * 7919 + self.ctx.rank)
        self.step = 0
        #: The newest checkpoint this run wrote or resumed from (None: none yet).
        self.last_checkpoint = resume_from
        if resume_from is not None:
            self._restore(resume_from, resume_state)
        self.network: nn.Module = (
            DistributedDataParallel(self.model, device_ids=[self.ctx.device] if self.ctx.device.type == "cuda" else None)
            if self.ctx.enabled
            else self.model
        )
        self.compiled = self._compile() if train.compile else False
        preload = should_preload(self.dataset, train, self.total_steps - self.step)
        self.batches = TrainingBatches(
            self.dataset, local_batch=self.local_batch, seed=config.seed, rank=self.ctx.rank,
            world_size=self.ctx.world_size, num_workers=train.num_workers,
            images=read_all(self.dataset, num_workers=train.num_workers, progress=self.progress) if preload else None,
        )  # fmt: skip
        if self.ctx.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._log(
            {
                "event": "start",
                "step": self.step,
                "device": str(self.ctx.device),
                "precision": self.precision.name,
                "precision_reason": self.precision.reason,
                "preload": preload,
                "compile": self.compiled,
                "workers": self.batches.num_workers,
                "threads": torch.get_num_threads(),
                "processes": self.ctx.world_size,
                "code": code_version(),
            }
        )

    # -- setup ----------------------------------------------------------------------------------
    def _precision(self, config: ExperimentConfig, resume: bool) -> Precision:
        """The configured precision; a resumed run keeps the one its config.yaml recorded."""
        setting = config.train.precision
        saved_path = self.run_dir / ckpt.CONFIG_FILE
        if resume and setting == "auto" and saved_path.is_file():
            saved = experiment_from_dict(read_yaml(saved_path), str(saved_path)).train.precision
            if saved != "auto":
                return Precision(saved, f"resumed in the precision the run started in ({saved})")
        return resolve_precision(setting, self.ctx.device)

    def _prepare_run_dir(self, resume: bool) -> tuple[Path | None, dict[str, Any] | None]:
        """The checkpoint to resume from and its training state: the newest intact one (a damaged
        newer one is skipped with a warning line), or (None, None) for a fresh run."""
        existing = ckpt.list_checkpoints(self.run_dir)
        if resume:
            if not existing:
                raise CheckpointError(f"{self.run_dir}: nothing to resume (no checkpoints); drop --resume to start")
            saved_path = self.run_dir / ckpt.CONFIG_FILE
            if saved_path.is_file():
                _check_resumable(experiment_from_dict(read_yaml(saved_path), str(saved_path)), self.config)
            return ckpt.newest_intact(self.run_dir, resumable=True)
        if existing:
            raise CheckpointError(
                f"{self.run_dir}: already holds checkpoints; pass --resume to continue it or choose another --out"
            )
        if self.ctx.is_main:
            write_text(self.run_dir / ckpt.CONFIG_FILE, dump_yaml(self.config))
        return None, None

    def _open_data(self) -> LabeledImages:
        dataset = self.config.data.build().open("train")
        if len(dataset) < self.config.train.batch_size:
            raise DataError(
                f"the train split has {len(dataset)} images, fewer than train.batch_size={self.config.train.batch_size}"
            )
        return dataset

    def _compile(self) -> bool:
        """Wrap the network in ``torch.compile`` (inductor); without a compiler, warn and stay eager."""
        missing = _compiler_missing() if self.ctx.device.type == "cpu" else None
        if missing:
            warnings.warn(f"train.compile: {missing}; training without compiling", ProtodiffWarning, stacklevel=2)
            return False
        self.network = torch.compile(self.network)
        return True

    def _restore(self, checkpoint: Path, state: dict[str, Any]) -> None:
        ckpt.load_weights_into(self.model, checkpoint / ckpt.MODEL_FILE)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = int(state["step"])
        rngs = state["rng"]
        if len(rngs) != self.ctx.world_size:
            raise CheckpointError(
                f"{checkpoint}: saved by {len(rngs)} processes, resumed with {self.ctx.world_size}; "
                "resume with the same process count"
            )
        mine = rngs[self.ctx.rank]
        self.generator.set_state(mine["generator"])
        torch.set_rng_state(mine["torch"])
        if torch.cuda.is_available() and "cuda" in mine:
            torch.cuda.set_rng_state(mine["cuda"], self.ctx.device)
        if self.ema is not None:
            if not (checkpoint / ckpt.EMA_FILE).is_file():
                raise CheckpointError(f"{checkpoint}: has no {ckpt.EMA_FILE} but train.ema_decay is set")
            ckpt.load_weights_into(self.ema.module, checkpoint / ckpt.EMA_FILE)
            self.ema.n_averaged.fill_(int(state["ema_n_averaged"]))

    # -- checkpoints ----------------------------------------------------------------------------
    def _rng_state(self) -> dict[str, torch.Tensor]:
        state = {"generator": self.generator.get_state(), "torch": torch.get_rng_state()}
        if self.ctx.device.type == "cuda":
            state["cuda"] = torch.cuda.get_rng_state(self.ctx.device)
        return state

    def save(self) -> Path:
        """Checkpoint the current step (every rank must call it: RNG states are gathered)."""
        rngs = self.ctx.gather({k: v.cpu() for k, v in self._rng_state().items()})
        directory = self.run_dir / ckpt.CHECKPOINTS_DIR / ckpt.step_dir_name(self.step)
        if self.ctx.is_main:
            state = {
                "step": self.step,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rngs,
            }
            if self.ema is not None:
                state["ema_n_averaged"] = int(self.ema.n_averaged.item())
            ckpt.save_checkpoint(
                directory,
                model=self.model,
                config=self.config,
                ema=self.ema.module if self.ema is not None else None,
                train_state=state,
            )
            ckpt.prune_checkpoints(self.run_dir, self.config.train.keep_checkpoints, directory)
        self.ctx.barrier()
        self.last_checkpoint = directory
        return directory

    # -- the loop -------------------------------------------------------------------------------
    def train_step(self, x0: torch.Tensor) -> dict[str, float]:
        self.network.train()
        with torch.autocast(self.ctx.device.type, dtype=torch.bfloat16, enabled=self.precision.autocast):
            loss, parts = self.network(x0.to(self.ctx.device, non_blocking=True), self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = self.config.train.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip if clip is not None else math.inf)
        if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):  # the norm is all-reduced: all ranks agree
            last = ckpt.list_checkpoints(self.run_dir)
            kept = f"last good checkpoint: {last[-1]}" if last else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss became {loss.item()} at step {self.step + 1} (gradient norm {grad_norm.item()}); {kept}; "
                "lower train.lr or set train.grad_clip"
            )
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.step += 1
        return {"loss": loss.item(), **{k: v.item() for k, v in parts.items()}, "grad_norm": grad_norm.item()}

    def fit(self) -> Path:
        """Train to ``total_steps``; returns the final checkpoint directory."""
        train = self.config.train
        bar = tqdm(total=self.total_steps, initial=self.step, desc="training", disable=not self.progress, dynamic_ncols=True)
        last_saved = self.step if self.step else None
        window_start, window_steps = time.perf_counter(), 0
        try:
            for x0 in self.batches.from_step(self.step):
                if self.step >= self.total_steps:
                    break
                record = self.train_step(x0)
                window_steps += 1
                bar.update(1)
                if self.step % train.log_every == 0 or self.step == self.total_steps:
                    elapsed = time.perf_counter() - window_start
                    record.update(
                        step=self.step,
                        lr=self.scheduler.get_last_lr()[0],
                        images_per_sec=window_steps * train.batch_size / elapsed,
                    )
                    bar.set_postfix(loss=f"{record['loss']:.4f}", img_s=f"{record['images_per_sec']:.1f}")
                    self._log(record)
                    window_start, window_steps = time.perf_counter(), 0
                if self.step % train.checkpoint_every == 0:
                    self.save()
                    last_saved = self.step
                if train.sample_every and self.step % train.sample_every == 0:
                    self.preview()
        except KeyboardInterrupt:
            bar.close()
            if self.step != last_saved:
                self.save()
            raise TrainingInterrupted(
                f"interrupted at step {self.step}; checkpoint saved in {self.run_dir}; continue with --resume"
            ) from None
        bar.close()
        final = self.save() if self.step != last_saved else self.last_checkpoint
        if self.ctx.is_main:
            plot_training_curve(self.run_dir / LOG_FILE, self.run_dir / "loss.png")
        self.preview()
        return final

    def _log(self, record: dict[str, Any]) -> None:
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / LOG_FILE, "a") as handle:
                handle.write(json.dumps(record) + "\n")

    @torch.no_grad()
    def preview(self) -> Path | None:
        """A sample grid of the current (EMA) weights in ``samples/step_N.png``.

        A conditional model is shown regenerating the first training images from their condition
        and fresh noise: each grid row is an original followed by its sample.
        """
        if not self.ctx.is_main:
            return None
        model = self.ema.module if self.ema is not None else self.model
        model.eval()
        sampler = self.config.sample.sampler.build(schedule=model.schedule)
        generator = torch.Generator().manual_seed(self.config.seed)
        path = self.run_dir / "samples" / f"{ckpt.step_dir_name(self.step)}.png"
        if model.is_conditional:
            originals = torch.stack([self.dataset[i][0] for i in range(min(PREVIEW_IMAGES // 2, len(self.dataset)))])
            samples = model.sample(condition=model.encode(originals), sampler=sampler, generator=generator)
            columns = [("real", originals), ("from condition", samples.cpu())]
            return save_image_grid(path, columns, per_row=2, title=f"step {self.step}: training images, regenerated")
        samples = model.sample(PREVIEW_IMAGES, sampler=sampler, generator=generator).cpu()
        return save_image_grid(path, [("", samples)], title=f"step {self.step}: samples")


def train(config: ExperimentConfig, run_dir: str | Path, *, device: str = "auto", resume: bool = False) -> Path:
    """Train (or resume) a run; returns the final checkpoint directory.

    Under torchrun the process group joined for the run is left again at the end.
    """
    try:
        return Trainer(config, run_dir, device=device, resume=resume).fit()
    finally:
        leave_process_group()
