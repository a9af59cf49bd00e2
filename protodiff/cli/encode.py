"""``protodiff encode``: the condition of every image of a split, saved as NumPy arrays."""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from protodiff.cli.options import device_option
from protodiff.io import write_file


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--split", default="test", show_default=True, help="Dataset split to encode (the model's dataset).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Encode only the first N images.")
@click.option("--maps/--no-maps", default=True, show_default=True, help="Also save the spatial maps (Patronus: distances).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default="conditions.npz",
    show_default=True,
    help="An .npz with vector, maps, attributes, names, attribute_names; or an .npy of the vectors "
    "(maps then go to <stem>-maps.npy).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@device_option
def encode(checkpoint: str, split: str, limit: int | None, maps: bool, out: str, batch_size: int, device: str) -> None:
    """Encode a split with CHECKPOINT's conditioner (Patronus: s and the patch-distance maps)."""
    from protodiff.checkpoint import load_model
    from protodiff.devices import resolve_device
    from protodiff.encoding import encode_split

    model, config = load_model(checkpoint, device=resolve_device(device))
    data = config.data.build().open(split)
    encoded = encode_split(model, data, limit=limit, batch_size=batch_size, keep_maps=maps, progress=True)
    out_path = Path(out)
    if out_path.suffix == ".npy":
        _save(out_path, np.save, encoded.vectors.numpy())
        if encoded.maps is not None:
            _save(out_path.with_name(f"{out_path.stem}-maps.npy"), np.save, encoded.maps.numpy())
    else:
        arrays = {
            "vector": encoded.vectors.numpy(),
            "attributes": encoded.attributes.numpy(),
            "names": np.array(encoded.names),
            "attribute_names": np.array(encoded.attribute_names),
        }
        if encoded.maps is not None:
            arrays["maps"] = encoded.maps.numpy()
        _save(out_path, np.savez, **arrays)
    click.echo(f"encoded {len(encoded.vectors)} images of {split} ({encoded.vectors.shape[1]} dims) into {out_path}")


def _save(path: Path, writer, *args, **kwargs) -> None:
    """Write through an open handle (so NumPy never appends a suffix), atomically."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            writer(handle, *args, **kwargs)

    write_file(path, write)
