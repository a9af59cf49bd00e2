"""One bench at a time per output directory.

Two benches writing the same ``--out`` would overwrite each other's cells and checkpoints, so a
bench holds ``OUT/.bench.lock`` while it runs. The lock is an OS file lock (``flock`` through the
``filelock`` library), not a marker file: the kernel releases it when its process ends however it
ends, so a bench killed with ``kill -9`` never blocks the next one. The holder's pid and start
time are written beside it (``.bench.lock.pid``) only to name it in the refusal; a stale pid file
is overwritten by the next holder and means nothing on its own.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from protodiff.errors import ProtodiffError

LOCK_FILE = ".bench.lock"
OWNER_FILE = ".bench.lock.pid"


class BenchBusy(ProtodiffError):
    """Another process is running a bench into the same output directory."""


def _owner(out: Path) -> str:
    """Who holds the lock, as its pid file says (it may still be writing it)."""
    try:
        text = (out / OWNER_FILE).read_text().strip()
    except OSError:
        text = ""
    return text or "a process that has not yet recorded its pid"


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold ``out``'s bench lock for the block; refuse in one line when another process holds it.

    An ``out`` that this call had to create and that holds nothing but the lock afterwards (the
    bench stopped before writing anything) is removed again, so a refused or failed start leaves
    no directory behind. Under ``torchrun`` the ranks of one bench are one bench: rank 0 holds the
    lock (a second bench's rank 0 is refused, and torchrun stops its other ranks).
    """
    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(out / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise BenchBusy(
            f"{out} is in use by another protodiff bench ({_owner(out)}); wait for it to finish, or choose another --out"
        ) from None
    try:
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        (out / OWNER_FILE).write_text(f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n")
        yield
    finally:
        with contextlib.suppress(OSError):
            (out / OWNER_FILE).unlink()
        lock.release()
        if created and {p.name for p in out.iterdir()} <= {LOCK_FILE}:
            with contextlib.suppress(OSError):  # another bench may have just taken the directory
                (out / LOCK_FILE).unlink(missing_ok=True)
                out.rmdir()
