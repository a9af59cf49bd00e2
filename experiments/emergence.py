"""When each attribute emerges during denoising, over seeds and layouts: ``explain emergence`` per run.

For every run, ``protodiff.explain(run, "emergence")`` on the first ``--images`` test images (DDIM,
``--steps`` steps, partial regeneration from ``--starts`` starts, judged by ``--classifier``),
saved as ``OUT/NAME`` (NAME: ``--names``, default the run directory's name; a NAME already there
is skipped, so an interrupted command resumes). ``--table`` reads every ``OUT/*/meta.json``,
groups the directories by name without its ``-sN`` seed suffix (``aligned-s0``, ``aligned-s1``
... form the group ``aligned``), and prints per group and attribute: the mean curve's crossing of
half its final value and of half its peak, per seed; the per-image crossing of half the peak,
median [IQR] over the images of all seeds whose edit raised the attribute by more than
``min_effect``; the latest partial-regeneration start per seed; and, per group, how often a
global attribute crosses before a local one (over every pair of a global and a local image
crossing in the same run).

Reproduces: docs/emergence.md, its tables (the aligned runs of docs/local-concepts.md's recipe and
the same recipe with ``data.layout=random``)::

    python experiments/emergence.py runs/lc/final-s0-bf16 runs/lc/final-s1-bf16 runs/lc/final-s2-bf16 --names aligned-s0 aligned-s1 aligned-s2 --classifier runs/lc/judges/db761867c3
    python experiments/emergence.py runs/lc/random-s0 runs/lc/random-s1 runs/lc/random-s2 --names random-s0 random-s1 random-s2 --classifier runs/lc/judges/db761867c3
    python experiments/emergence.py --table
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

#: The attributes with a place in the image (shapes' marks); the others change every pixel.
LOCAL = ("red_square", "blue_disc", "green_triangle", "yellow_cross", "checker_patch")


def measure(runs: list[str], names: list[str], classifier: str, images: int, steps: int, starts: int, out: Path) -> None:
    import protodiff

    for run, name in zip(runs, names):
        if (out / name / "meta.json").exists():
            continue
        options = {"sampler": {"name": "ddim", "steps": steps}, "partial_starts": starts}
        explanation = protodiff.explain(run, "emergence", images=images, options=options, classifier=classifier, device="cpu")
        explanation.save(out / name)
        print(f"{run}: {out / name}", flush=True)


def per_image(directory: Path, min_effect: float) -> dict[str, list[int]]:
    """Each attribute's per-image crossings of half the peak (images whose edit took)."""
    from safetensors.torch import load_file

    from protodiff.explain.emergence import per_image_crossings

    meta = json.loads((directory / "meta.json").read_text())
    curves = load_file(str(directory / "tensors.safetensors"))["attribute_images"]
    found = per_image_crossings(meta["timesteps"], curves, min_effect)
    return {a: [t for t in c.peak if t is not None] for a, c in zip(meta["attributes"], found)}


def table(out: Path) -> str:
    import torch

    from protodiff.explain.emergence import spread

    groups: dict[str, list[Path]] = {}
    for meta in sorted(out.glob("*/meta.json")):
        groups.setdefault(re.sub(r"-s\d+$", "", meta.parent.name), []).append(meta.parent)
    lines = []
    for group, directories in groups.items():
        metas = [json.loads((d / "meta.json").read_text()) for d in directories]
        min_effect = metas[0].get("min_effect", 0.5)
        crossed = [per_image(d, min_effect) for d in directories]
        steps, images = len(metas[0]["timesteps"]), metas[0]["images"]
        lines += [
            f"**{group}** ({len(metas)} runs: {', '.join(d.name for d in directories)}; {images} images each, "
            f"DDIM {steps} steps, against {metas[0]['against']}; per-image: images whose edit raised the "
            f"attribute by > {min_effect})",
            "",
            "| attribute | dimension per run | half final | half peak | per image, half peak: median per run | "
            "per image, half peak: median [IQR] (images), runs pooled | latest partial start |",
            "|---|---|---|---|---|---|---|",
        ]
        joined = lambda values: " / ".join("—" if v is None else str(v) for v in values)
        for attribute in metas[0]["attributes"]:
            rows = [m["attributes"][attribute] for m in metas]
            pooled = spread([t for c in crossed for t in c[attribute]])
            cell = "—" if pooled["median"] is None else f"{pooled['median']:.0f} [{pooled['q1']:.0f}, {pooled['q3']:.0f}]"
            medians = joined(None if m is None else round(m) for m in (spread(c[attribute])["median"] for c in crossed))
            finals = joined(r["crossing_final_t"] if not r["fell_back"] else "fell back" for r in rows)
            partial = joined(m["partial"]["attributes"][attribute]["latest_t"] for m in metas if "partial" in m)
            lines.append(
                f"| {attribute}{'' if attribute in LOCAL else ' (global)'} | {joined(r['dimension'] for r in rows)} | "
                f"{finals} | {joined(r['crossing_peak_t'] for r in rows)} | {medians} | {cell} ({pooled['images']}) | {partial} |"
            )
        earlier, pairs = 0.0, 0
        for c in crossed:
            local = torch.tensor([t for a, v in c.items() if a in LOCAL for t in v], dtype=torch.float)
            other = torch.tensor([t for a, v in c.items() if a not in LOCAL for t in v], dtype=torch.float)
            if len(local) and len(other):
                compare = other[:, None] - local[None, :]
                earlier += float((compare > 0).sum() + 0.5 * (compare == 0).sum())
                pairs += compare.numel()
        early = [v["crossing_peak_t"] for m in metas for v in m["dimensions"].values() if v["crossing_peak_t"] is not None]
        first = sum(t >= 800 for t in early)
        lines += [
            "",
            f"Prototypes (each dimension's own activation, mean curve): {first} of {len(early)} (all runs) cross half their "
            f"peak in the first 200 steps (t >= 800); median crossing {spread(list(early))['median']}.",
        ]
        if pairs:
            lines += [
                "",
                f"A global attribute's image crosses half its peak before a local one's in {earlier / pairs:.2f} of {pairs} pairs (ties count half).",
            ]
        lines.append("")
    return "\n".join(lines)


def arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("runs", nargs="*", help="trained runs (one per seed)")
    parser.add_argument("--names", nargs="*", help="a directory name under --out per run (default: the run's name)")
    parser.add_argument("--classifier", help="the attribute judge (protodiff classifier train)")
    parser.add_argument("--images", type=int, default=16, help="test images per run")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps of the walk")
    parser.add_argument("--starts", type=int, default=6, help="partial-regeneration starts")
    parser.add_argument("--out", type=Path, default=Path("runs/emergence"))
    parser.add_argument("--table", action="store_true", help="print the markdown tables of --out")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = arguments()
    args = parser.parse_args(argv)
    if args.runs:
        if not args.classifier:
            parser.error("--classifier is required to measure")
        names = args.names or [Path(r).name for r in args.runs]
        if len(names) != len(args.runs):
            parser.error("--names needs one name per run")
        measure(args.runs, names, args.classifier, args.images, args.steps, args.starts, args.out)
    if args.table or not args.runs:
        print(table(args.out))


if __name__ == "__main__":
    main()
