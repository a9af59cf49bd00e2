"""The ``none`` conditioner: an empty condition, so the denoiser is a plain DDPM.

It is how the core proves itself without any method plugin (the ``ddpm-shapes`` preset), and the
reference for the smallest thing a conditioner must provide.
"""

from __future__ import annotations

from torch import Tensor

from protodiff._registry.component import Component
from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.conditioner import Condition, Conditioner


class Unconditional(Conditioner):
    """Every image gets the same, empty condition (``dim`` 0, no embedding)."""

    dim = 0
    embed_dim = 0

    def __init__(self, config: Component.Config, *, in_channels: int, image_size: int) -> None:
        super().__init__()
        self.config = config

    def encode(self, x0: Tensor) -> Condition:
        return Condition(x0.new_zeros(x0.shape[0], 0), [])

    def embed(self, vector: Tensor) -> Tensor | None:
        return None


@hookimpl
def protodiff_register(registry: Registries) -> None:
    registry.conditioner.add("none", Unconditional)
