"""How much the condition is worth to the denoiser at each noise level.

For a trained run: the denoising loss on held-out images at a grid of timesteps, with each image's
own condition and with another image's (the batch rolled by one). The gap is what the denoiser
gains from the condition at that step; where it is zero, no gradient reaches the conditioner.

Reproduces: no number in docs/ is quoted from it directly. docs/local-concepts.md, "What limits
local concepts here" (1), reports the related measurement on an ``oracle`` run of
``experiments/local_concepts.py`` (one attribute bit swapped between images, where this swaps the
whole condition). Prints the table and writes it to ``OUT/results.json``::

    python experiments/condition_value.py RUN [--images 256] [--out runs/condition-value]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from protodiff.provenance import code_version

#: The timesteps measured (of a 1000-step schedule).
TIMESTEPS = (50, 150, 300, 450, 600, 750, 850, 950, 999)


@torch.no_grad()
def condition_value(run: str, images: int, seed: int = 0) -> list[tuple[int, float, float]]:
    """(t, loss with each image's own condition, loss with another image's) per timestep."""
    from protodiff.checkpoint import load_model

    model, config = load_model(run)
    data = config.data.build().open("test")
    x0 = torch.stack([data[i][0] for i in range(min(images, len(data)))])
    condition = model.encode(x0).vector
    other = torch.roll(condition, 1, dims=0)
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for t in TIMESTEPS:
        noise = torch.randn(x0.shape, generator=generator)
        tt = torch.full((len(x0),), t, dtype=torch.long)
        x_t = model.schedule.q_sample(x0, tt, noise)
        target = model.schedule.training_target(x0, noise, tt)
        losses = []
        for vector in (condition, other):
            pred = model.denoiser(x_t, tt, model.conditioner.embed(vector))
            losses.append(torch.nn.functional.mse_loss(pred, target).item())
        rows.append((t, losses[0], losses[1]))
    return rows


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run")
    parser.add_argument("--images", type=int, default=256, help="Test images (the first ones of the split).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/condition-value"), help="Writes results.json here.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    from protodiff.io import write_json

    rows = condition_value(args.run, args.images, args.seed)
    print(f"{'t':>4} {'own s':>8} {'other s':>8} {'gain':>8}")
    for t, own, other in rows:
        print(f"{t:>4} {own:8.4f} {other:8.4f} {other - own:8.4f}")
    results = [{"t": t, "own": own, "other": other, "gain": other - own} for t, own, other in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "results.json",
        {"run": str(args.run), "images": args.images, "seed": args.seed, "rows": results, "code": code_version()},
    )


if __name__ == "__main__":
    main()
