"""Intermediate results shared by metrics evaluated together.

TAD, attributes captured and latent AUROC read the same latents; FID and KID compare the same
generated images. Encoding 10k images or sampling 10k more is the expensive part, so the metrics
of one evaluation share a :class:`Shared` memo and each artefact is computed once, keyed by
everything it depends on.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")


class Shared:
    """A memo: ``get(key, compute)`` runs ``compute()`` the first time ``key`` is asked for."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if key not in self._items:
            self._items[key] = compute()
        return self._items[key]
