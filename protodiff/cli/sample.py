"""``protodiff sample``: generate a grid of images from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from protodiff.cli.options import device_option, seed_option
from protodiff.config import override_component
from protodiff.errors import ProtodiffError


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--n", "num_images", type=click.IntRange(min=1), default=None, help="Number of images (default: the config's).")
@click.option("--sampler", default=None, help="Sampler name (default: the config's): ddim, ddpm, dpm-solver++ or a plugin's.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Number of sampling steps.")
@click.option("--eta", type=float, default=None, help="DDIM eta (0 = deterministic).")
@click.option(
    "--condition-on",
    type=click.Choice(["train", "test"]),
    default=None,
    help="Condition on the first N images of this split (needed for conditional models without a prior).",
)
@click.option(
    "--invert",
    is_flag=True,
    help="With --condition-on: start from the inversion of each image by the sampler (a near-exact reconstruction) "
    "instead of fresh noise (which shows only what the condition carries).",
)
@click.option("--out", type=click.Path(dir_okay=False), default="samples.png", show_default=True, help="Output PNG grid.")
@click.option("--no-ema", is_flag=True, help="Use the raw weights even if EMA weights were saved.")
@seed_option
@device_option
def sample(
    checkpoint: str,
    num_images: int | None,
    sampler: str | None,
    steps: int | None,
    eta: float | None,
    condition_on: str | None,
    invert: bool,
    out: str,
    no_ema: bool,
    seed: int | None,
    device: str,
) -> None:
    """Sample images from CHECKPOINT (a checkpoint or a run directory) into a PNG grid.

    A conditional model samples its conditions from its latent prior (see fit-prior), or with
    --condition-on regenerates real images from their conditions (grid: each real image next to
    its regeneration). Small images are shown upscaled and every column is labelled.
    """
    from protodiff.checkpoint import load_model
    from protodiff.devices import resolve_device
    from protodiff.figures import regeneration_grid, save_image, save_image_grid

    model, config = load_model(checkpoint, device=resolve_device(device), use_ema=not no_ema)
    seed = config.seed if seed is None else seed
    n = num_images or config.sample.num_images
    options = {k: v for k, v in {"steps": steps, "eta": eta}.items() if v is not None}
    chosen = override_component(config.sample.sampler, sampler, options).build(schedule=model.schedule)
    generator = torch.Generator().manual_seed(seed)

    if condition_on is None and model.is_conditional and model.prior is None:
        raise ProtodiffError(
            f"{checkpoint}: the model is conditional and has no latent prior; pass --condition-on test to "
            "condition on real images, or fit a prior first (protodiff fit-prior)"
        )
    if condition_on is not None:
        data = config.data.build().open(condition_on)
        originals = torch.stack([data[i][0] for i in range(min(n, len(data)))]).to(model.device)
        how = "from their inversion" if invert else "from fresh noise"
        grid = regeneration_grid(
            model,
            originals,
            sampler=chosen,
            seed=seed,
            noises=0 if invert else 1,
            invert=invert,
            title=f"{condition_on} images regenerated from their condition, {how}",
            progress=True,
        )
        save_image(grid, out)
    else:
        samples = model.sample(n, sampler=chosen, generator=generator, progress=True).cpu()
        title = "new images: conditions from the latent prior" if model.is_conditional else "samples"
        save_image_grid(out, [("", samples)], title=title)
    click.echo(f"wrote {Path(out)}")
