"""Range checks for option values, for a ``Config``'s ``__post_init__``.

Each raises ``ValueError`` naming the option and the value it got; the config parser turns that
into a one-line ConfigError with the file and the key path, exactly as it reports an unknown key.
``None`` (an option left unset) passes every check. NaN fails every check: a comparison written
``value < 0`` would wave ``nan`` through, these are written the other way round. Infinity fails
every check with an upper bound and :func:`finite`.

Values that can only be checked against a model (a timestep below the model's schedule length)
are checked where the model is first seen, with :func:`protodiff.diffusion.schedule.check_timestep`
and the like. Imports nothing of protodiff, so plugins and contracts use it freely.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

#: The seeds every random source protodiff hands a seed to accepts (numpy's and scikit-learn's
#: ``random_state`` stop at 2**32 - 1; torch generators take more).
MAX_SEED = 2**32 - 1


def _numbers(values: dict[str, Any]) -> Iterable[tuple[str, Any]]:
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            yield from ((f"{name}[{i}]", v) for i, v in enumerate(value))
        else:
            yield name, value


def finite(**values: float | None) -> None:
    """Each value is a finite number (no nan, no inf)."""
    for name, value in _numbers(values):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value}")


def at_least(minimum: float, **values: float | None) -> None:
    """Each value (or each item of a list value) is finite and >= ``minimum``."""
    for name, value in _numbers(values):
        if not (value >= minimum and math.isfinite(value)):
            raise ValueError(f"{name} must be at least {minimum}, got {value}")


def positive(**values: float | None) -> None:
    """Each value is finite and > 0."""
    for name, value in _numbers(values):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be positive, got {value}")


def between(low: float, high: float, **values: float | None) -> None:
    """Each value lies in the closed interval [low, high]."""
    for name, value in _numbers(values):
        if not low <= value <= high:
            raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def probability(**values: float | None) -> None:
    """Each value is a probability, in [0, 1]."""
    between(0.0, 1.0, **values)


def seed(**values: int | None) -> None:
    """Each value is a seed every random source takes: 0 <= seed <= :data:`MAX_SEED`."""
    for name, value in _numbers(values):
        if not 0 <= value <= MAX_SEED:
            raise ValueError(f"{name} must be in [0, {MAX_SEED}], got {value}")


def one_of(choices: Iterable[str], **values: str | None) -> None:
    """Each value is one of ``choices``."""
    allowed = list(choices)
    for name, value in values.items():
        if value is not None and value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
