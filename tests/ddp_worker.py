"""Run by tests/test_ddp.py under torchrun: train a few steps, then dump this rank's weights."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import TINY_OVERRIDES
from safetensors.torch import save_file

from protodiff.experiment import load_experiment
from protodiff.training import Trainer


def main(out: str) -> None:
    config = load_experiment(
        "ddpm-shapes", [*TINY_OVERRIDES, "train.steps=4", "train.checkpoint_every=2", "model.denoiser.dropout=0.1"]
    )
    trainer = Trainer(config, Path(out) / "run", device="cpu", progress=False)
    trainer.fit()
    state = {k: v.detach().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(Path(out) / f"rank{trainer.ctx.rank}.safetensors"))


if __name__ == "__main__":
    main(sys.argv[1])
