"""``protodiff summary``: the one figure to open first after a run."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from protodiff.cli.options import device_option, seed_option


@click.command()
@click.argument("run", type=click.Path())
@click.option(
    "--n",
    "num_images",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Test images to regenerate (twice as many prior samples).",
)
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Output PNG [RUN/summary.png].")
@seed_option
@device_option
def summary(run: str, num_images: int, out: str | None, seed: int | None, device: str) -> None:
    """Write one page about RUN (a run directory or a checkpoint): test images next to their
    regeneration from the condition alone, new images from the latent prior (or samples, for an
    unconditional model), and the training loss."""
    from protodiff.checkpoint import CHECKPOINTS_DIR, checkpoint_step, load_model, resolve_checkpoint
    from protodiff.devices import resolve_device
    from protodiff.figures import image_grid, regeneration_grid, save_image, summary_figure, training_curve
    from protodiff.training import LOG_FILE

    checkpoint = resolve_checkpoint(run)
    run_dir = checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINTS_DIR else checkpoint
    model, config = load_model(checkpoint, device=resolve_device(device))
    seed = config.seed if seed is None else seed
    sampler = config.sample.sampler.build(schedule=model.schedule)
    panels = []
    if model.is_conditional:
        test = config.data.build().open("test")
        originals = torch.stack([test[i][0] for i in range(min(num_images, len(test)))])
        grid = regeneration_grid(model, originals, sampler=sampler, seed=seed, per_row=2)
        panels.append(("test images, regenerated from their condition alone", grid))
    if not model.is_conditional or model.prior is not None:
        samples = model.sample(2 * num_images, sampler=sampler, generator=torch.Generator().manual_seed(seed)).cpu()
        caption = "new images: condition from the latent prior" if model.is_conditional else "samples"
        panels.append((caption, image_grid([("", samples)], per_row=4)))
    curve = training_curve(run_dir / LOG_FILE)
    if curve is not None:
        panels.append(("training loss", curve))
    conditioner = config.model.conditioner.name
    step = checkpoint_step(checkpoint) if checkpoint.parent.name == CHECKPOINTS_DIR else "?"
    title = f"{run_dir.name}: {conditioner} conditioner ({model.conditioner.dim} dims) on {config.data.name}, step {step}"
    path = save_image(summary_figure(title, panels), out or run_dir / "summary.png")
    click.echo(f"wrote {Path(path)}")
