"""Where each tool puts an attribute, against ground truth: the ``localisation`` metric per map source.

For every run (one per seed) and every map source, ``protodiff.evaluate(run, ["localisation"])``
on the run's test split; each result is appended to ``OUT/results.jsonl`` (a run and source
already there are skipped, so an interrupted command resumes). ``--table`` prints sources x
attributes x (pointing game, mass inside / area, pixel AUROC), mean ± standard deviation over the
runs. ``--figure`` draws four test images with each source's map of one of their marks
(``OUT/maps.png``, from the first run).

A source is a registered saliency name with options after a colon:
``df-rise:target=condition,num_masks=300``.

Reproduces: docs/localisation.md, the table and the figure::

    python experiments/localisation.py runs/lc/final-s0-bf16 runs/lc/final-s1-bf16 runs/lc/final-s2-bf16 --images 128
    python experiments/localisation.py runs/lc/final-s0-bf16 --figure
    python experiments/localisation.py --table
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]

from protodiff.provenance import code_version

#: The sources of docs/localisation.md: Patronus' maps, DF-CAM and DF-RISE published and aimed at
#: the attribute's best dimension, and the two controls.
SOURCES = (
    "prototypes",
    "df-cam",
    "df-cam:target=condition",
    "df-rise",
    "df-rise:target=condition",
    "random",
    "centre",
)
#: The three numbers of the table: (result key, column title).
COLUMNS = (("pointing", "pointing"), ("mass_over_area", "mass / area"), ("auroc", "AUROC"))


def parse_source(text: str) -> dict[str, Any]:
    """``name:key=value,key=value`` -> the ``localisation.map`` option (values read as YAML)."""
    name, _, rest = text.partition(":")
    options: dict[str, Any] = {"name": name}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        options[key.strip()] = yaml.safe_load(value)
    return options


def measure(runs: list[str], sources: list[str], images: int, out: Path, seed: int) -> None:
    import protodiff

    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    done = {(r["run"], r["source"]) for r in read(path)}
    for run in runs:
        for source in sources:
            if (run, source) in done:
                continue
            options = {"localisation": {"map": parse_source(source), "num_images": images}}
            result = protodiff.evaluate(run, ["localisation"], split="test", seed=seed, options=options, device="cpu")
            record = {"run": run, "source": source, "seed": seed, **result["localisation"], "code": code_version()}
            with open(path, "a") as handle:
                handle.write(json.dumps(record) + "\n")
            print(f"{run} {source}: pointing {record['value']}", flush=True)


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def table(out: Path) -> str:
    """The markdown table: mean ± std over runs of each number, per source and attribute."""
    import numpy as np

    records = read(out / "results.jsonl")
    sources = list(dict.fromkeys(r["source"] for r in records))
    attributes = list(dict.fromkeys(a for r in records for a in r["per_attribute"]))
    lines = [
        "| source | attribute | runs | images | " + " | ".join(title for _, title in COLUMNS) + " |",
        "|---|---|---|---|" + "---|" * len(COLUMNS),
    ]
    for source in sources:
        rows = [r for r in records if r["source"] == source]
        for attribute in attributes:
            found = [r["per_attribute"][attribute] for r in rows if r["per_attribute"].get(attribute)]
            if not found:
                continue
            cells = []
            for key, _ in COLUMNS:
                values = np.array([f[key] for f in found], dtype=float)
                cells.append(f"{values.mean():.2f} ± {values.std():.2f}" if len(values) > 1 else f"{values.mean():.2f}")
            images = round(float(np.mean([f["images"] for f in found])))
            lines.append(f"| {source} | {attribute} | {len(found)} | {images} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(run: str, sources: list[str], out: Path, seed: int, count: int = 4) -> Path:
    """``count`` test images with marks, each with every source's map of its first mark."""
    import torch

    from protodiff.checkpoint import load_model
    from protodiff.config import ComponentSpec
    from protodiff.figures import heat_over, save_image_grid
    from protodiff.metrics.localisation import best_dimensions

    model, config = load_model(run, device="cpu")
    model.eval()
    source = config.data.build()
    test, train = source.open("test"), source.open("train")
    picked = [i for i in range(len(test)) if test.regions(i)][:count]
    x0 = torch.stack([test[i][0] for i in picked])
    marks = [next(iter(test.regions(i))) for i in picked]
    outline = torch.stack([test.regions(i)[m] for i, m in zip(picked, marks)]).float()
    columns = [("image", x0), ("region scored", x0 * 0.5 + outline[:, None] * 0.5)]
    targets = best_dimensions(model, train, test.region_names(), 1000)
    for text in sources:
        options = parse_source(text)
        saliency = ComponentSpec("saliency", options.pop("name"), raw=options).build()
        rows = []
        for row, mark in enumerate(marks):
            generator = torch.Generator().manual_seed(seed)
            target = targets[mark] if saliency.targeted else None
            rows.append(saliency.maps(model, x0[row : row + 1], target=target, generator=generator).float().cpu())
        columns.append((text.replace(":target=condition", " (aimed)"), heat_over(x0, torch.cat(rows))))
    out.mkdir(parents=True, exist_ok=True)
    title = f"{Path(run).name}: each source's map of the image's first mark ({', '.join(marks)}, top to bottom)"
    return save_image_grid(out / "maps.png", columns, per_row=1, title=title)


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="Trained runs on a dataset with regions (one per seed).")
    parser.add_argument("--sources", default=",".join(SOURCES).replace(",", ";"), help="Map sources, ';'-separated.")
    parser.add_argument("--images", type=int, default=128, help="Test images with a region scored per run and source.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", action="store_true", help="Draw OUT/maps.png from the first run instead of measuring.")
    parser.add_argument("--table", action="store_true", help="Print the table of OUT/results.jsonl and stop.")
    parser.add_argument("--out", type=Path, default=Path("runs/localisation"), help="results.jsonl (appended), maps.png.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    sources = [s for s in args.sources.split(";") if s]
    if args.table:
        print(table(args.out))
        return
    if not args.runs:
        raise SystemExit("name at least one run (or --table)")
    if args.figure:
        print(f"wrote {figure(args.runs[0], sources, args.out, args.seed)}")
        return
    measure(args.runs, sources, args.images, args.out, args.seed)
    print(table(args.out))


if __name__ == "__main__":
    main()
