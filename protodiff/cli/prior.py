"""``protodiff fit-prior``: fit a latent prior on a trained model's condition vectors."""

from __future__ import annotations

import click
import torch

from protodiff.cli.options import device_option, seed_option, set_option
from protodiff.config import apply_overrides, to_dict
from protodiff.contracts.conditioner import Conditioner
from protodiff.errors import ProtodiffError
from protodiff.experiment import experiment_from_dict
from protodiff.plugins import registries


@click.command("fit-prior")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--prior", "prior_name", default=None,
    help="Latent prior to fit (default: the config's `prior`, else the one the conditioner declares).",
)
@set_option
@click.option("--split", default="train", show_default=True, help="Split whose conditions the prior learns.")
@seed_option
@device_option
def fit_prior(checkpoint: str, prior_name: str | None, overrides: tuple[str, ...], split: str, seed: int | None, device: str) -> None:
    """Fit a latent prior to the conditions of CHECKPOINT's training images (encoder frozen).

    Afterwards `protodiff sample CHECKPOINT` generates without real images: s ~ prior, x ~ p(x|s).
    Options of the prior go through --set, e.g. --set prior.epochs=50.
    """
    from protodiff.checkpoint import load_model, resolve_checkpoint, save_prior
    from protodiff.encoding import encode_split
    from protodiff.training import resolve_device

    path = resolve_checkpoint(checkpoint)
    model, config = load_model(path, device=resolve_device(device))
    if not model.is_conditional:
        raise ProtodiffError(f"{path}: the model is unconditional ({config.model.conditioner.name}); a prior needs a condition")
    raw = to_dict(config)
    if prior_name is not None or raw.get("prior") is None:
        raw["prior"] = {"name": prior_name or _declared_prior(model.conditioner, config.model.conditioner.name)}
    config = experiment_from_dict(apply_overrides(raw, list(overrides)), source=f"{path}/config.yaml with --set")
    seed = config.seed if seed is None else seed

    encoded = encode_split(model, config.data.build().open(split), progress=True)
    prior = config.prior.build(dim=model.conditioner.dim).to(model.device)
    history = prior.fit(encoded.vectors, generator=torch.Generator().manual_seed(seed), progress=True)
    info = {"split": split, "vectors": len(encoded.vectors), "seed": seed, "final_loss": history[-1], "losses": history}
    save_prior(path, prior.cpu(), config, info)
    click.echo(f"fitted {config.prior.name} on {len(encoded.vectors)} vectors (final loss {history[-1]:.4f}); saved in {path}")


def _declared_prior(conditioner: Conditioner, name: str) -> str:
    """The latent prior the conditioner declares (``default_prior``); the core names none itself."""
    if conditioner.default_prior is None:
        known = ", ".join(registries().latent_prior.names()) or "none installed"
        raise ProtodiffError(f"conditioner {name!r} declares no latent prior; name one with --prior ({known})")
    return conditioner.default_prior
