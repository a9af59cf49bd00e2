"""Which attributes does each stage of denoising decide? Early vs late exponential sampling, judged.

"Visual analysis of diffusion" claims semantic content is decided early in denoising and details
late, and shows it by crowding the sampler's steps into one stage (the ``exponential`` sampler,
plugin dfx). Here ``--images`` images are generated from the same fresh noise x_T by DDIM with
uniform steps and by the ``early`` and ``late`` exponential schedules (the same number of steps);
a conditional run regenerates the first test images from their own condition, an unconditional
one (a plain DDPM) samples freely. An attribute classifier (trained on the train split) judges
every attribute of every image. Per attribute: how often each pair of schedules disagrees, and on
a conditional run agreement with the real image. Per pair, the RMS difference of the images split
into a coarse part (8 x 8 average pooling: layout, background, colour cast) and the fine rest
(edges, texture): the paper's claim predicts that ``early`` departs from uniform in the coarse
part and ``late`` in the fine part.

Reproduces: no number in docs/ comes from it (docs/reference.md describes the ``exponential``
sampler it drives); it measures the paper's global-vs-detail claim on a run of one's own. Prints
both tables and writes them to ``OUT/results.json``::

    python experiments/exponential_stages.py runs/ps --classifier runs/judge --images 200 [--out runs/exponential-stages]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from protodiff import load_model
from protodiff.io import write_json
from protodiff.metrics.attribute_classifier import AttributeClassifier
from protodiff.provenance import code_version

SCHEDULES = {"uniform": ("ddim", {}), "early": ("exponential", {"mode": "early"}), "late": ("exponential", {"mode": "late"})}
PAIRS = (("uniform", "early"), ("uniform", "late"), ("early", "late"))


def coarse_and_fine(images: torch.Tensor, cell: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The images' ``cell`` x ``cell`` block means (upsampled back) and what is left of them."""
    coarse = F.interpolate(F.avg_pool2d(images, cell), scale_factor=cell, mode="nearest")
    return coarse, images - coarse


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--classifier", required=True, help="A saved attribute classifier for the run's data.")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/exponential-stages"), help="Writes results.json here.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)

    model, config = load_model(args.run, device="cpu")
    model.eval()
    judge = AttributeClassifier.load(args.classifier)
    test = config.data.build().open("test")
    if list(judge.attribute_names) != list(test.attribute_names):
        raise SystemExit(f"the classifier judges {judge.attribute_names}, the run's data has {test.attribute_names}")
    count = args.images if not model.is_conditional else min(args.images, len(test))
    noise = model.noise(count, torch.Generator().manual_seed(args.seed))
    vectors: list[torch.Tensor] | list[None]
    if model.is_conditional:
        real = torch.stack([test[i][0] for i in range(count)])
        vectors = list(torch.cat([model.encode(chunk).vector for chunk in real.split(args.batch_size)]).split(args.batch_size))
        truth = judge.predict_proba(real) > 0.5
    else:
        vectors = [None] * len(noise.split(args.batch_size))
    images, calls = {}, {}
    for label, (name, options) in SCHEDULES.items():
        sampler = model.sampler(name, steps=args.steps, **options)
        images[label] = torch.cat(
            [model.sample(condition=v, x_T=x, sampler=sampler) for v, x in zip(vectors, noise.split(args.batch_size))]
        )
        calls[label] = judge.predict_proba(images[label]) > 0.5

    source = "test images regenerated from their condition" if model.is_conditional else "unconditional samples"
    print(f"{args.run}: {count} {source}, the same x_T per schedule, {args.steps} steps, seed {args.seed}")
    pairs = " | ".join(f"{a} vs {b} differ" for a, b in PAIRS)
    agreement = "agreement: uniform | early | late | " if model.is_conditional else "rate: uniform | early | late | "
    print(f"| attribute | {agreement}{pairs} |")
    print("|---" * (4 + len(PAIRS)) + "|")
    attributes = {}
    for i, name in enumerate(judge.attribute_names):
        if model.is_conditional:
            shown = [(c[:, i] == truth[:, i]).float().mean().item() for c in calls.values()]
        else:
            shown = [c[:, i].float().mean().item() for c in calls.values()]
        differ = [(calls[a][:, i] != calls[b][:, i]).float().mean().item() for a, b in PAIRS]
        print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in shown + differ) + " |")
        attributes[name] = {**dict(zip(SCHEDULES, shown)), **{f"{a} vs {b}": d for (a, b), d in zip(PAIRS, differ)}}
    print("\n| pair | RMS difference, coarse (8 x 8 means) | fine (the rest) |")
    print("|---|---|---|")
    rms = {}
    for a, b in PAIRS:
        (coarse_a, fine_a), (coarse_b, fine_b) = coarse_and_fine(images[a]), coarse_and_fine(images[b])
        coarse, fine = ((coarse_a - coarse_b) ** 2).mean().sqrt(), ((fine_a - fine_b) ** 2).mean().sqrt()
        print(f"| {a} vs {b} | {coarse:.4f} | {fine:.4f} |")
        rms[f"{a} vs {b}"] = {"coarse": float(coarse), "fine": float(fine)}
    args.out.mkdir(parents=True, exist_ok=True)
    measured = "agreement" if model.is_conditional else "rate"
    write_json(
        args.out / "results.json",
        {
            "run": str(args.run),
            "code": code_version(),
            "images": count,
            "source": source,
            "steps": args.steps,
            "seed": args.seed,
            "attributes": {"measured": measured, "per_attribute": attributes},
            "rms": rms,
        },
    )


if __name__ == "__main__":
    main()
