"""``protodiff names``: read or set the names of a model's condition dimensions, or have them suggested."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from protodiff.errors import ProtodiffError
from protodiff.schema import OptionalKey, SchemaError, check, read_json

if TYPE_CHECKING:
    from torch import Tensor

#: Two dimensions whose activations over real images correlate above this are one concept group.
GROUP_CORRELATION = 0.5

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


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("assignments", nargs=-1, metavar="[INDEX=NAME]...")
@click.option(
    "--suggest",
    "effects",
    type=click.Path(file_okay=False),
    default=None,
    help="Propose names from what raising each dimension does: an effect matrix (the --out of `protodiff explain effects`).",
)
@click.option(
    "--detect",
    "classifier",
    type=click.Path(file_okay=False),
    default=None,
    help="Propose names from what each dimension detects on real images, judged by this attribute classifier.",
)
@click.option("--apply", is_flag=True, help="With --suggest/--detect: store the proposed names (otherwise only shown).")
@click.option(
    "--min-effect",
    type=float,
    default=0.2,
    show_default=True,
    help="Name from an edit only where raising the dimension moves the attribute's probability at least this much.",
)
@click.option(
    "--min-auroc",
    type=click.FloatRange(0.5, 1.0),
    default=0.9,
    show_default=True,
    help="Name from detection only where the dimension separates the attribute at least this well.",
)
@click.option(
    "--images",
    type=click.IntRange(min=2),
    default=512,
    show_default=True,
    help="With --detect: real images of --split the AUROCs are taken over.",
)
@click.option("--split", default="test", show_default=True, help="With --detect: the split of the run's dataset.")
def names(
    checkpoint: str,
    assignments: tuple[str, ...],
    effects: str | None,
    classifier: str | None,
    apply: bool,
    min_effect: float,
    min_auroc: float,
    images: int,
    split: str,
) -> None:
    """List CHECKPOINT's condition dimensions, or name some: `protodiff names RUN 3="red square"`.

    Patronus' prototypes are unnamed until a person looks at them (see their visualisations);
    names are stored in the checkpoint and appear wherever the dimension is reported. Two kinds of
    evidence propose names, shown side by side: `--suggest DIR`, what raising each dimension does
    (the attribute an attribute classifier sees it turn on, with the effect size and its
    consistency across images), and `--detect CLASSIFIER`, what each dimension detects on real
    images (its AUROC for the attribute the classifier sees). With `--detect`, the concept groups
    (dimensions whose activations correlate > 0.5 over the same images) are listed under one name
    each. Nothing is renamed unless `--apply`.
    """
    from protodiff.checkpoint import load_model, resolve_checkpoint, set_condition_names
    from protodiff.explain.naming import (
        auroc_table,
        concept_groups,
        detections,
        evidence,
        group_name,
        judge_calls,
        proposals,
    )

    path = resolve_checkpoint(checkpoint)
    model, config = load_model(path)
    current = model.conditioner.names
    if apply and effects is None and classifier is None:
        raise ProtodiffError("--apply stores suggested names: give --suggest DIR or --detect CLASSIFIER too")
    for item in assignments:
        index, sep, name = item.partition("=")
        if not sep or not index.strip().isdigit() or not name.strip():
            raise ProtodiffError(f"{item!r}: expected INDEX=NAME, e.g. 3='red square'")
        if not 0 <= int(index) < len(current):
            raise ProtodiffError(f"{item!r}: index out of range, the condition has {len(current)} dimensions")
        current[int(index)] = name.strip()
    if effects is not None or classifier is not None:
        suggestions = read_suggestions(effects, len(current)) if effects is not None else None
        detected = vectors = table = calls = None
        attributes: list[str] = []
        if classifier is not None:
            from protodiff.encoding import encode_split
            from protodiff.metrics.attribute_classifier import AttributeClassifier

            data = config.data.build().open(split)
            vectors = encode_split(model, data, limit=images).vectors  # read by detection and the groups
            judge = AttributeClassifier.load(classifier)
            calls = judge_calls(data, judge, images)
            table, attributes = auroc_table(vectors, calls), list(judge.attribute_names)
            detected = detections(table, attributes)
        proposed = proposals(len(current), suggestions, detected, min_effect=min_effect, min_auroc=min_auroc)
        for j, name in enumerate(current):
            click.echo(f"{j:3d}  {name:<16} -> {proposed.get(j, '-'):<22} ({evidence(j, suggestions, detected)})")
        if vectors is not None and table is not None and calls is not None:
            groups = concept_groups(vectors, GROUP_CORRELATION)
            click.echo(
                f"concept groups (activations correlated > {GROUP_CORRELATION} over {len(vectors)} images; "
                "an edit with --set follow=regression moves a group as one):"
                if groups
                else f"concept groups: none (no two dimensions correlate above {GROUP_CORRELATION})"
            )
            for members in groups:
                click.echo(f"     {' + '.join(current[j] for j in members):<40} -> {group_name(members, proposed)}")
            echo_attribute_detectors(table, attributes, current, vectors, calls)
            click.echo(
                "an attribute none of these edits adds (a background, on some runs): its mean difference given each "
                f"image's other attributes, fitted on labels: protodiff explain attribute-edit {checkpoint} "
                f"--attribute NAME --classifier {classifier} --set direction=conditional --set guidance=1"
            )
        if not apply:
            return
        current = [proposed.get(i, name) for i, name in enumerate(current)]
    if assignments or apply:
        set_condition_names(path, current)
    for i, name in enumerate(current):
        click.echo(f"{i:3d}  {name}")


def echo_attribute_detectors(table: Tensor, attributes: list[str], names: list[str], vectors: Tensor, calls: Tensor) -> None:
    """Per attribute, the dimension that detects it best and the edit that adds it: the detector
    raised to its maximum (a "no" one lowered to its minimum), followed with the other attributes'
    detectors ``given`` (docs/steering.md measures that edit). Where other dimensions detect what
    it misses (its detection group), the edit raises them all."""
    from protodiff.explain.naming import attribute_detectors, detection_group, given_for

    click.echo(
        "attribute detectors (raise one, or lower a 'no' one, to add its attribute; with the dimensions that "
        "detect it together; its followers given the others' detectors):"
    )
    for detector in attribute_detectors(table, attributes):
        attribute = attributes.index(detector.attribute)
        group = detection_group(vectors, calls, table, attribute)
        given = ",".join(option_name(names, g) for g in given_for(table, group.members, attribute))
        extreme = "max" if detector.auroc >= 0.5 else "min"
        together = f", together {group.separation:.2f}" if len(group.members) > 1 else ""
        changes = " ".join(f"--to {option_name(names, j)}={extreme}" for j in group.members)
        click.echo(
            f"     {detector.name:<20} {' + '.join(names[j] for j in group.members):<12} "
            f"AUROC {detector.auroc:.2f}{together}  {changes} --set follow=regression --set given=[{given}]"
        )


def option_name(names: list[str], index: int) -> str:
    """Dimension ``index`` as a command-line option names it: by name, or by its index when the name
    has a space or a comma, which would not survive ``--to`` or ``--set``'s list."""
    return names[index] if re.fullmatch(r"[\w.-]+", names[index]) else str(index)
