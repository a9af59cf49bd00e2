"""``protodiff train`` and ``protodiff config``."""

from __future__ import annotations

import os
from pathlib import Path

import click

from protodiff.cli.options import device_option, seed_option, set_option
from protodiff.config import dump_yaml
from protodiff.experiment import load_experiment


def _load(config: str, overrides: tuple[str, ...], seed: int | None):
    extra = (f"seed={seed}",) if seed is not None else ()
    return load_experiment(config, overrides + extra)


@click.command()
@click.argument("config")
@set_option
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory (default: runs/<config name>).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint.")
@seed_option
@device_option
def train(config: str, overrides: tuple[str, ...], out: str | None, resume: bool, seed: int | None, device: str) -> None:
    """Train the model CONFIG describes (a YAML path or a preset name, see `protodiff plugins`).

    Launch with `torchrun --nproc_per_node N -m protodiff train ...` for data-parallel training.
    """
    from protodiff.checkpoint import checkpoint_step
    from protodiff.training import train as run_training

    experiment = _load(config, overrides, seed)
    run_dir = Path(out) if out else Path("runs") / Path(config).stem
    final = run_training(experiment, run_dir, device=device, resume=resume)
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"trained to step {checkpoint_step(final)}; checkpoint: {final}")


@click.command("config")
@click.argument("config")
@set_option
@seed_option
def config_command(config: str, overrides: tuple[str, ...], seed: int | None) -> None:
    """Print CONFIG fully resolved (every default filled in), as training would use it."""
    click.echo(dump_yaml(_load(config, overrides, seed)), nl=False)
