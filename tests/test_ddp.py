"""Data-parallel training: two CPU processes over gloo, launched by torchrun, end with the same weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from protodiff import checkpoint as ckpt


@pytest.mark.slow
def test_two_gloo_ranks_hold_identical_weights(tmp_path):
    tests_dir = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{tests_dir}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(tests_dir / "ddp_worker.py"),
        str(tmp_path),
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    saved = load_file(str(ckpt.list_checkpoints(tmp_path / "run")[-1] / ckpt.MODEL_FILE))
    assert all(torch.equal(saved[k], rank0[k].contiguous()) for k in rank0)
    state = ckpt.load_train_state(ckpt.list_checkpoints(tmp_path / "run")[-1])
    assert len(state["rng"]) == 2  # both ranks' RNG states, so the run can resume on 2 processes
