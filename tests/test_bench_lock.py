"""A bench output directory is locked while a bench runs: a second bench on it stops in one line
naming the first, and a bench killed with ``kill -9`` leaves nothing that blocks the next."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from protodiff.bench.lock import LOCK_FILE, OWNER_FILE, BenchBusy, output_lock
from protodiff.cli import main

HOLD = """
import sys, time
from pathlib import Path
from protodiff.bench.lock import output_lock
with output_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path):
    """Start a process that holds the lock of ``out`` (as a running bench does); yields (out, process)."""
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True, env={**os.environ, "RANK": "0"}
    )
    try:
        assert process.stdout.readline().strip() == "locked"
        yield out, process
    finally:
        process.kill()
        process.wait(timeout=30)


def test_a_second_bench_on_the_same_out_stops_in_one_line_naming_the_first(holder):
    out, process = holder
    result = CliRunner().invoke(main, ["bench", "--preset", "quick", "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert result.output.count("\n") == 1 and result.output.startswith("protodiff: error: ")
    assert f"pid {process.pid}" in result.output and "another protodiff bench" in result.output
    assert sorted(p.name for p in out.iterdir()) == sorted([LOCK_FILE, OWNER_FILE])  # nothing of the first touched


def test_a_bench_killed_with_sigkill_does_not_block_the_next(holder):
    out, process = holder
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL
    assert (out / OWNER_FILE).is_file()  # its pid file is left behind, stale
    with output_lock(out):  # the OS released its lock with the process
        assert f"pid {os.getpid()} " in (out / OWNER_FILE).read_text()
        with pytest.raises(BenchBusy, match=f"pid {os.getpid()} "), output_lock(out):
            pass


def test_a_start_that_stops_leaves_no_directory_behind(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError), output_lock(out):
        raise RuntimeError("preflight failed")
    assert not out.exists()
    kept = tmp_path / "kept"
    with output_lock(kept):
        (kept / "run.json").write_text("{}")
    assert (kept / "run.json").is_file() and not (kept / OWNER_FILE).exists()
