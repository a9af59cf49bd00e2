"""``protodiff names``: read or set the names of a model's condition dimensions."""

from __future__ import annotations

import click

from protodiff.errors import ProtodiffError


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("assignments", nargs=-1, metavar="[INDEX=NAME]...")
def names(checkpoint: str, assignments: tuple[str, ...]) -> None:
    """List CHECKPOINT's condition dimensions, or name some: `protodiff names RUN 3="red square"`.

    Patronus' prototypes are unnamed until a person looks at them (see their visualisations);
    names are stored in the checkpoint and appear wherever the dimension is reported.
    """
    from protodiff.checkpoint import load_model, resolve_checkpoint, set_condition_names

    path = resolve_checkpoint(checkpoint)
    model, _ = load_model(path)
    current = model.conditioner.names
    for item in assignments:
        index, sep, name = item.partition("=")
        if not sep or not index.strip().isdigit() or not name.strip():
            raise ProtodiffError(f"{item!r}: expected INDEX=NAME, e.g. 3='red square'")
        if not 0 <= int(index) < len(current):
            raise ProtodiffError(f"{item!r}: index out of range, the condition has {len(current)} dimensions")
        current[int(index)] = name.strip()
    if assignments:
        set_condition_names(path, current)
    for i, name in enumerate(current):
        click.echo(f"{i:3d}  {name}")
