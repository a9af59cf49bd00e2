"""``protodiff data check``: validate a local copy of a dataset before training on it."""

from __future__ import annotations

import math

import click
from tqdm.auto import tqdm

from protodiff._registry.manager import registries
from protodiff.config import apply_overrides, parse
from protodiff.contracts.dataset import DatasetSource, LabeledImages
from protodiff.errors import DataError


@click.group()
def data() -> None:
    """Inspect and validate datasets."""


@data.command()
@click.argument("name")
@click.option("--data-root", type=click.Path(), default=None, help="Where the dataset's official files are (data.root).")
@click.option("--image-size", type=click.IntRange(min=8), default=None, help="Image size to convert to (default: the dataset's).")
@click.option("--split", "splits", multiple=True, help="Check only this split (repeatable; default: all).")
@click.option(
    "--limit", type=click.IntRange(min=1), default=None, help="Check a deterministic subset of at most N items per split."
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Set a source option, e.g. --set uncertain=ones.")
def check(
    name: str,
    data_root: str | None,
    image_size: int | None,
    splits: tuple[str, ...],
    limit: int | None,
    overrides: tuple[str, ...],
) -> None:
    """Validate a local copy of dataset NAME, decoding every image.

    Prints the items per split, the image shape and each attribute's share of positives. The first
    problem is reported as one line naming the file (and its line or index), with exit status 2.
    Options of the source that have no flag go through --set:

    \b
        protodiff data check chexpert --data-root DIR --set uncertain=ones
    """
    cls = registries().dataset.get(name)
    options = {k: v for k, v in {"root": data_root, "image_size": image_size, "limit": limit}.items() if v is not None}
    source: DatasetSource = cls(parse(cls.Config, apply_overrides(options, overrides), where="data", source="command line"))
    for split in splits:
        if split not in cls.splits:
            raise DataError(f"{name} has no split {split!r}; choose one of {', '.join(cls.splits)}")

    shape = (source.channels, source.config.image_size, source.config.image_size)
    rates: dict[str, list[float]] = {}
    names: list[str] = []
    for split in splits or cls.splits:
        dataset = source.open(split)
        _validate(dataset, shape, f"{name} {split}")
        click.echo(f"{split}: {len(dataset)} images of {'x'.join(map(str, shape))}{_expected_note(source, split, len(dataset))}")
        positives = dataset.attributes().mean(dim=0) if len(dataset) else None
        names = dataset.attribute_names
        rates[split] = [] if positives is None else positives.tolist()
    if not names:
        click.echo("attributes: none")
        return
    width = max(len(n) for n in [*names, "attribute"])
    click.echo("share of positives per split:")
    click.echo(f"  {'attribute':<{width}}" + "".join(f"  {split:>7}" for split in rates))
    for i, attribute in enumerate(names):
        click.echo(f"  {attribute:<{width}}" + "".join(f"  {r[i]:7.3f}" if r else f"  {'-':>7}" for r in rates.values()))


def _validate(dataset: LabeledImages, shape: tuple[int, int, int], label: str) -> None:
    """Read every item; check it against the shape a model is built for and the split's attribute table."""
    attributes = dataset.attributes()
    if tuple(attributes.shape) != (len(dataset), len(dataset.attribute_names)):
        raise DataError(
            f"{label}: attribute table of shape {tuple(attributes.shape)} for {len(dataset)} items and {len(dataset.attribute_names)} names"
        )
    for index in tqdm(range(len(dataset)), desc=f"checking {label}", unit="img", dynamic_ncols=True):
        image, row = dataset[index]
        if tuple(image.shape) != shape:
            raise DataError(f"{label} item {index}: image of shape {tuple(image.shape)}, expected {shape}")
        low, high = image.min().item(), image.max().item()
        if not (math.isfinite(low) and math.isfinite(high) and low >= -1.0 and high <= 1.0):
            raise DataError(f"{label} item {index}: pixel values {low:.3g}..{high:.3g} outside [-1, 1]")
        if not row.equal(attributes[index]):
            raise DataError(f"{label} item {index}: its attributes differ from the split's attribute table")


def _expected_note(source: DatasetSource, split: str, count: int) -> str:
    expected = source.expected_size(split)
    if expected is None or count == expected or source.config.limit is not None:
        return ""
    return f" (the official split has {expected}: this copy is incomplete or modified)"
