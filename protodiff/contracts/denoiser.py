"""The ``denoiser`` contract: predict the noise in ``x_t`` given the step and a condition embedding."""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

from protodiff._registry.component import Component


class Denoiser(nn.Module, Component, ABC):
    """``forward(x_t, t, cond_emb) -> prediction`` with the shape of ``x_t``.

    Constructed as ``cls(config, in_channels=C, cond_dim=E, cond_mode=mode)``: ``cond_dim`` is the
    conditioner's ``embed_dim`` (0 for an unconditional model, in which case ``cond_emb`` is
    always ``None``) and ``cond_mode`` the mode the model chose (see
    :func:`protodiff.experiment.chosen_cond_mode`). The prediction is eps or v, as the noise
    schedule's ``prediction`` says; the model converts it to eps for the samplers.
    """

    @abstractmethod
    def forward(self, x_t: Tensor, t: Tensor, cond_emb: Tensor | None) -> Tensor: ...
