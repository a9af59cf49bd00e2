"""Which code made a result: the package version and, from a git checkout, the commit.

A run retrained from its own config and seed is bit-identical only under the same code and the
same CPU thread count (reductions split differently over another count), so training's start
event and the bench's report record both. A table that can no longer be retrained cell for cell
then says why, instead of leaving it unknown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from protodiff._version import __version__

#: The source tree of an editable install or a checkout run in place (the package's parent).
SOURCE_ROOT = Path(__file__).resolve().parent.parent
#: What ``commit`` says when protodiff was not imported from a git checkout (an installed wheel).
NO_CHECKOUT = "unknown (not imported from a git checkout)"


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(SOURCE_ROOT), *args], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout.strip()


def source_commit() -> str:
    """The commit of the checkout protodiff is imported from, with ``+dirty`` when tracked files
    differ from it; :data:`NO_CHECKOUT` for an installed copy (one inside some other repository, a
    virtual environment in a checkout, say, is not that repository's code and is not named by it)."""
    try:
        if Path(_git("rev-parse", "--show-toplevel")).resolve() != SOURCE_ROOT:
            return NO_CHECKOUT
        commit, changes = _git("rev-parse", "HEAD"), _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):  # no git, or not a repository
        return NO_CHECKOUT
    return commit + ("+dirty" if changes else "")


def code_version() -> dict[str, str]:
    """The versions a result depends on: protodiff (and its commit), torch and Python."""
    return {
        "protodiff": __version__,
        "commit": source_commit(),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
    }
