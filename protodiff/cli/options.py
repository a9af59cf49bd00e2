"""Options shared by several commands, so they read and behave the same everywhere."""

from __future__ import annotations

import click

from protodiff.validation import MAX_SEED

seed_option = click.option(
    "--seed", type=click.IntRange(0, MAX_SEED), default=None, help="Random seed (default: the config's, else 0)."
)
device_option = click.option(
    "--device", default="auto", show_default=True, help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N."
)
set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config key, e.g. --set train.steps=200."
)
