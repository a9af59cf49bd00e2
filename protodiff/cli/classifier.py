"""``protodiff classifier train``: the attribute classifier that judges edits and shortcuts.

An explainer that says "prototype 3 turns on the red square and also darkens the background" reads
both attributes off the edited image with this classifier. If the classifier was trained where the
two attributes go together, it may have learnt to read one from the other, and then it reports the
shortcut whether or not the generator has it. So the judge is trained where the attributes vary
independently (on ``shapes`` with a planted shortcut: the test split, which never has it), and this
command warns when the split it is given has correlated attributes.
"""

from __future__ import annotations

import click

from protodiff.cli.options import device_option, seed_option, set_option
from protodiff.errors import ProtodiffError

#: Attribute pairs correlated more than this (|Pearson r| of the labels) are reported.
CORRELATION_WARNING = 0.2


@click.group()
def classifier() -> None:
    """Attribute classifiers: the independent judges of edits, effects and shortcuts."""


@classifier.command("train")
@click.option("--data", "config", required=True, help="A preset or experiment YAML; its data section is used.")
@click.option(
    "--split", default="train", show_default=True, help="The split to train on: one where the attributes vary independently."
)
@click.option("--out", type=click.Path(file_okay=False), required=True, help="The classifier directory (written atomically).")
@click.option("--eval-split", default="test", show_default=True, help="The held-out split its accuracy is reported on.")
@set_option
@seed_option
@device_option
def train_classifier(
    config: str, split: str, out: str, eval_split: str, overrides: tuple[str, ...], seed: int | None, device: str
) -> None:
    """Train an attribute classifier on a dataset split, for `protodiff explain ... --classifier OUT`.

    `--set data.KEY=VALUE` changes the dataset (as for training), `--set classifier.KEY=VALUE` the
    classifier (widths, steps, batch_size, lr, weight_decay).
    """
    from protodiff.config import apply_overrides, parse
    from protodiff.devices import resolve_device
    from protodiff.experiment import load_experiment
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    stray = [item for item in overrides if not item.partition("=")[0].strip().startswith(("data.", "classifier."))]
    if stray:
        raise ProtodiffError(f"--set {stray[0]!r}: only data.KEY and classifier.KEY apply to a classifier")
    mine = [item.removeprefix("classifier.") for item in overrides if item.startswith("classifier.")]
    raw = apply_overrides({}, mine)
    if seed is not None:
        raw["seed"] = seed
    options = parse(ClassifierConfig, raw, source="--set", where="classifier")
    source = load_experiment(config, [item for item in overrides if item.startswith("data.")]).data.build()
    data = source.open(split)
    for pair, r in correlated_attributes(data):
        click.echo(
            f"protodiff: warning: {pair[0]} and {pair[1]} are correlated in {split} (r = {r:+.2f}); "
            "a judge trained here may read one from the other: train on a split where they vary independently",
            err=True,
        )
    model = AttributeClassifier.for_dataset(data, options).to(resolve_device(device))
    losses = model.fit(data, progress=True)
    model.save(out)
    accuracy = model.accuracy(source.open(eval_split))
    click.echo(f"trained {options.steps} steps on {split} (final loss {losses[-1]:.4f}); wrote {out}")
    click.echo(f"accuracy on {eval_split}: " + ", ".join(f"{name} {value:.3f}" for name, value in accuracy.items()))


def correlated_attributes(data, threshold: float = CORRELATION_WARNING) -> list[tuple[tuple[str, str], float]]:
    """Attribute pairs of ``data`` whose labels correlate beyond ``threshold``, strongest first."""
    import torch

    labels = data.attributes().float()
    r = torch.corrcoef(labels.T).nan_to_num(0.0)
    names = data.attribute_names
    pairs = [((names[i], names[j]), float(r[i, j])) for i in range(len(names)) for j in range(i + 1, len(names))]
    return sorted([p for p in pairs if abs(p[1]) > threshold], key=lambda p: -abs(p[1]))
