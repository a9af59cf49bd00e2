"""Condition dimensions by name: what ``--to proto_03=3.0``, ``--shift`` and ``--sweep`` parse into.

``--to proto_03=max`` (or ``min``) sets a dimension to its plausible maximum (minimum): the caller
resolves it per image against real images (:meth:`Change.apply`'s ``extreme``), as ``effects``
enhances a dimension.

Names are the checkpoint's (``protodiff names``), so an edit reads the same words a figure shows.
A value far outside what real images produce is allowed (extrapolation is the point of a sweep)
but warned about, naming the range observed, since the denoiser never saw it in training.
"""

from __future__ import annotations

import difflib
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from protodiff.errors import ProtodiffError, ProtodiffWarning


class OutOfRangeWarning(ProtodiffWarning):
    """An edit sets a dimension far outside the values observed on real images (one warning line)."""


def dimension_index(name: str, names: Sequence[str]) -> int:
    """The index of dimension ``name`` (a name, or an index as digits), else a one-line error with suggestions."""
    if name in names:
        return list(names).index(name)
    if name.isdigit() and int(name) < len(names):
        return int(name)
    close = difflib.get_close_matches(name, names, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"the names are {names[0]!r} ... {names[-1]!r}"
    raise ProtodiffError(f"no condition dimension {name!r} ({hint}); `protodiff names RUN` lists them")


def _pair(item: str, what: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name.strip() or not value.strip():
        raise ProtodiffError(f"{item!r}: expected NAME={what}")
    return name.strip(), value.strip()


def _number(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProtodiffError(f"{item!r}: {text!r} is not a number") from None
    if not (math.isfinite(value) and abs(value) <= torch.finfo(torch.float32).max):  # conditions are float32
        raise ProtodiffError(f"{item!r}: {text!r} is not a finite number a condition can hold")
    return value


#: The words ``--to NAME=...`` takes besides a number: the dimension's plausible maximum or minimum.
EXTREMES = ("max", "min")


@dataclass(frozen=True)
class Change:
    """Set (``shift=False``) or shift dimension ``index`` by ``value``; set it to its plausible
    maximum or minimum when ``value`` is one of :data:`EXTREMES`."""

    index: int
    value: float | str
    shift: bool = False

    @property
    def extreme(self) -> str | None:
        """``max`` or ``min`` when this change sets the dimension to an extreme, else None."""
        return self.value if isinstance(self.value, str) else None

    def apply(self, vector: Tensor, extreme: Tensor | None = None) -> Tensor:
        """``vector`` (N, K) changed; an extreme change sets the dimension to ``extreme``, one value
        per row (resolved by the caller against real images)."""
        out = vector.clone()
        if self.extreme is not None:
            if extreme is None:
                raise ProtodiffError(f"{self.extreme} needs the real images it is the extreme of (a data split)")
            out[:, self.index] = extreme.to(out)
        else:
            value = float(self.value)
            out[:, self.index] = out[:, self.index] + value if self.shift else value
        return out

    def label(self, names: Sequence[str]) -> str:
        """``proto_03=2.5``, ``proto_03+=0.5`` or ``proto_03=max``, as a figure's title says it."""
        value = self.value if isinstance(self.value, str) else f"{self.value:g}"
        return f"{names[self.index]}{'+=' if self.shift else '='}{value}"


def parse_changes(to: Sequence[str], shift: Sequence[str], names: Sequence[str]) -> list[Change]:
    """``NAME=VALUE`` (or ``NAME=max``, ``NAME=min``) settings and ``NAME=+DELTA`` shifts as
    :class:`Change` s, in that order."""
    changes = []
    for items, shifting, what in ((to, False, "VALUE"), (shift, True, "+DELTA")):
        for item in items:
            name, value = _pair(item, what)
            index = dimension_index(name, names)
            if not shifting and value in EXTREMES:
                changes.append(Change(index, value))
            else:
                changes.append(Change(index, _number(value, item), shifting))
    return changes


@dataclass(frozen=True)
class Sweep:
    """Dimension ``index`` set to each of ``values`` in turn (an extrapolation strip)."""

    index: int
    values: tuple[float, ...]


def parse_sweep(item: str, names: Sequence[str]) -> Sweep:
    """``NAME=START:STOP:COUNT`` as a :class:`Sweep` of COUNT evenly spaced values."""
    name, spec = _pair(item, "START:STOP:COUNT")
    parts = spec.split(":")
    if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 2:
        raise ProtodiffError(f"{item!r}: expected NAME=START:STOP:COUNT with COUNT >= 2, e.g. proto_03=0:3:7")
    start, stop = _number(parts[0], item), _number(parts[1], item)
    return Sweep(dimension_index(name, names), tuple(torch.linspace(start, stop, int(parts[2])).tolist()))


def observed_range(vectors: Tensor) -> tuple[Tensor, Tensor]:
    """Per-dimension (min, max) of condition vectors (N, K) of real images."""
    return vectors.min(dim=0).values, vectors.max(dim=0).values


def warn_outside(index: int, values: Sequence[float], low: Tensor, high: Tensor, names: Sequence[str]) -> None:
    """Warn (one line) when a value lies more than one observed range beyond the observed range of dimension ``index``."""
    lo, hi = float(low[index]), float(high[index])
    width = max(hi - lo, 1e-6)
    far = [v for v in values if v < lo - width or v > hi + width]
    if far:
        warnings.warn(
            f"{names[index]} = {far[0]:g} is far outside the range observed on real images [{lo:.3g}, {hi:.3g}]; "
            "the denoiser never saw such a value, so read the result as extrapolation",
            OutOfRangeWarning,
            stacklevel=3,
        )
