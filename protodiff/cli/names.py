"""``protodiff names``: read or set the names of a model's condition dimensions, or have them suggested."""

from __future__ import annotations

from pathlib import Path

import click

from protodiff.errors import ProtodiffError
from protodiff.schema import OptionalKey, SchemaError, check, read_json

#: What ``--suggest`` reads from an effects explanation's ``meta.json``.
SUGGESTIONS_SCHEMA = {
    "explainer": OptionalKey(str),
    "suggestions": [{"index": int, "attribute": str, "effect": float, "consistency": float}],
}


def read_suggestions(directory: str, dimensions: int) -> list[dict]:
    """The suggestions an ``effects`` (or ``shortcuts``) explanation saved, checked against its
    schema (one line naming the file and key) and against the model."""
    path = Path(directory) / "meta.json"
    fix = f"run `protodiff explain effects RUN --classifier DIR --out {directory}` again"
    if not path.is_file():
        raise ProtodiffError(
            f"{directory}: no effect matrix here; run `protodiff explain effects RUN --classifier DIR --out {directory}`"
        )
    meta = read_json(path, {"explainer": OptionalKey(str)}, fix=fix)
    if "suggestions" not in meta:
        raise ProtodiffError(f"{path}: written by explain {meta.get('explainer')!r}, not by explain effects")
    suggestions = check(meta, SUGGESTIONS_SCHEMA, path)["suggestions"]
    if len(suggestions) != dimensions:
        raise ProtodiffError(
            f"{directory}: the effects cover {len(suggestions)} dimensions, this model has {dimensions}; explain this run"
        )
    for i, s in enumerate(suggestions):
        if not 0 <= s["index"] < dimensions:
            raise SchemaError(
                f"{path}: suggestions[{i}].index: {s['index']} is not a dimension of this model (0..{dimensions - 1}); {fix}"
            )
    return suggestions


def suggested_names(suggestions: list[dict], min_effect: float) -> dict[int, str]:
    """Index -> suggested name for each dimension that turns its attribute on by at least
    ``min_effect``; a second dimension turning on the same attribute is ``attribute (2)``, and so on."""
    names, seen = {}, {}
    for s in sorted(suggestions, key=lambda s: -s["effect"]):
        if s["effect"] >= min_effect:
            seen[s["attribute"]] = seen.get(s["attribute"], 0) + 1
            names[s["index"]] = s["attribute"] if seen[s["attribute"]] == 1 else f"{s['attribute']} ({seen[s['attribute']]})"
    return names


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("assignments", nargs=-1, metavar="[INDEX=NAME]...")
@click.option(
    "--suggest",
    "effects",
    type=click.Path(file_okay=False),
    default=None,
    help="Propose names from an effect matrix (the --out of `protodiff explain effects`).",
)
@click.option("--apply", is_flag=True, help="With --suggest: store the proposed names (otherwise only shown).")
@click.option(
    "--min-effect",
    type=float,
    default=0.2,
    show_default=True,
    help="With --suggest: propose a name only where the attribute's probability rises at least this much.",
)
def names(checkpoint: str, assignments: tuple[str, ...], effects: str | None, apply: bool, min_effect: float) -> None:
    """List CHECKPOINT's condition dimensions, or name some: `protodiff names RUN 3="red square"`.

    Patronus' prototypes are unnamed until a person looks at them (see their visualisations);
    names are stored in the checkpoint and appear wherever the dimension is reported. `--suggest`
    proposes, for each dimension, the attribute an attribute classifier sees it turn on, with the
    effect size and its consistency across images; it renames nothing unless `--apply` is given.
    """
    from protodiff.checkpoint import load_model, resolve_checkpoint, set_condition_names

    path = resolve_checkpoint(checkpoint)
    model, _ = load_model(path)
    current = model.conditioner.names
    if apply and effects is None:
        raise ProtodiffError("--apply stores suggested names: give --suggest DIR too")
    for item in assignments:
        index, sep, name = item.partition("=")
        if not sep or not index.strip().isdigit() or not name.strip():
            raise ProtodiffError(f"{item!r}: expected INDEX=NAME, e.g. 3='red square'")
        if not 0 <= int(index) < len(current):
            raise ProtodiffError(f"{item!r}: index out of range, the condition has {len(current)} dimensions")
        current[int(index)] = name.strip()
    if effects is not None:
        suggestions = read_suggestions(effects, len(current))
        proposed = suggested_names(suggestions, min_effect)
        for s in suggestions:
            name = proposed.get(s["index"], "-")
            click.echo(
                f"{s['index']:3d}  {current[s['index']]:<16} -> {name:<20} "
                f"({s['attribute']} {s['effect']:+.2f}, same direction on {s['consistency']:.0%} of images)"
            )
        if not apply:
            return
        current = [proposed.get(i, name) for i, name in enumerate(current)]
    if assignments or apply:
        set_condition_names(path, current)
    for i, name in enumerate(current):
        click.echo(f"{i:3d}  {name}")
