"""Fitting a latent prior on a trained model's condition vectors (``protodiff fit-prior`` and the
bench's cells): afterwards the model generates from nothing, s ~ prior, x ~ p(x | s)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from protodiff._registry.manager import registries
from protodiff.config import apply_overrides, to_dict
from protodiff.contracts.conditioner import Conditioner
from protodiff.errors import ProtodiffError
from protodiff.experiment import experiment_from_dict


@dataclass
class FittedPrior:
    """What a fit produced: the prior's name, how many vectors it saw, its final loss, where it is."""

    name: str
    vectors: int
    final_loss: float
    checkpoint: Path


def fit_prior(
    checkpoint: str | Path,
    *,
    prior: str | None = None,
    overrides: Sequence[str] = (),
    split: str = "train",
    seed: int | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> FittedPrior:
    """Fit ``prior`` (default: the config's ``prior``, else the one the conditioner declares) on the
    conditions of ``split`` (encoder frozen) and store it in the checkpoint beside the weights."""
    from protodiff.checkpoint import load_model, resolve_checkpoint, save_prior
    from protodiff.encoding import encode_split

    path = resolve_checkpoint(checkpoint)
    model, config = load_model(path, device=device)
    if not model.is_conditional:
        raise ProtodiffError(f"{path}: the model is unconditional ({config.model.conditioner.name}); a prior needs a condition")
    raw = to_dict(config)
    if prior is not None or raw.get("prior") is None:
        raw["prior"] = {"name": prior or _declared_prior(model.conditioner, config.model.conditioner.name)}
    config = experiment_from_dict(apply_overrides(raw, list(overrides)), source=f"{path}/config.yaml with --set")
    seed = config.seed if seed is None else seed

    encoded = encode_split(model, config.data.build().open(split), progress=progress)
    fitted = config.prior.build(dim=model.conditioner.dim).to(model.device)
    history = fitted.fit(encoded.vectors, generator=torch.Generator().manual_seed(seed), progress=progress)
    info = {"split": split, "vectors": len(encoded.vectors), "seed": seed, "final_loss": history[-1], "losses": history}
    save_prior(path, fitted.cpu(), config, info)
    return FittedPrior(config.prior.name, len(encoded.vectors), history[-1], path)


def _declared_prior(conditioner: Conditioner, name: str) -> str:
    """The latent prior the conditioner declares (``default_prior``); the core names none itself."""
    if conditioner.default_prior is None:
        known = ", ".join(registries().latent_prior.names()) or "none installed"
        raise ProtodiffError(f"conditioner {name!r} declares no latent prior; name one with --prior ({known})")
    return conditioner.default_prior
