"""``protodiff fit-prior``: fit a latent prior on a trained model's condition vectors."""

from __future__ import annotations

import click

from protodiff.cli.options import device_option, seed_option, set_option


@click.command("fit-prior")
@click.argument("checkpoint", type=click.Path())
@click.option(
    "--prior",
    "prior_name",
    default=None,
    help="Latent prior to fit (default: the config's `prior`, else the one the conditioner declares).",
)
@set_option
@click.option("--split", default="train", show_default=True, help="Split whose conditions the prior learns.")
@seed_option
@device_option
def fit_prior(
    checkpoint: str, prior_name: str | None, overrides: tuple[str, ...], split: str, seed: int | None, device: str
) -> None:
    """Fit a latent prior to the conditions of CHECKPOINT's training images (encoder frozen).

    Afterwards `protodiff sample CHECKPOINT` generates without real images: s ~ prior, x ~ p(x|s).
    Options of the prior go through --set, e.g. --set prior.epochs=50.
    """
    from protodiff.devices import resolve_device
    from protodiff.priors import fit_prior as fit

    fitted = fit(
        checkpoint, prior=prior_name, overrides=overrides, split=split, seed=seed, device=resolve_device(device), progress=True
    )
    click.echo(
        f"fitted {fitted.name} on {fitted.vectors} vectors (final loss {fitted.final_loss:.4f}); saved in {fitted.checkpoint}"
    )
