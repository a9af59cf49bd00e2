"""How much the condition is worth to the denoiser at each noise level.

For a trained run: the denoising loss on held-out images at a grid of timesteps, with each image's
own condition and with another image's (the batch rolled by one). The gap is what the denoiser
gains from the condition at that step; where it is zero, no gradient reaches the conditioner.

    python experiments/condition_value.py RUN [--images 256]
"""

from __future__ import annotations

import argparse

import torch


@torch.no_grad()
def condition_value(run: str, images: int, seed: int = 0) -> list[tuple[int, float, float]]:
    from protodiff.checkpoint import load_model

    model, config = load_model(run)
    data = config.data.build().open("test")
    x0 = torch.stack([data[i][0] for i in range(images)])
    condition = model.encode(x0).vector
    other = torch.roll(condition, 1, dims=0)
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for t in (50, 150, 300, 450, 600, 750, 850, 950, 999):
        noise = torch.randn(x0.shape, generator=generator)
        tt = torch.full((images,), t, dtype=torch.long)
        x_t = model.schedule.q_sample(x0, tt, noise)
        target = model.schedule.training_target(x0, noise, tt)
        losses = []
        for vector in (condition, other):
            pred = model.denoiser(x_t, tt, model.conditioner.embed(vector))
            losses.append(torch.nn.functional.mse_loss(pred, target).item())
        rows.append((t, *losses))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run")
    parser.add_argument("--images", type=int, default=256)
    args = parser.parse_args()
    print(f"{'t':>4} {'own s':>8} {'other s':>8} {'gain':>8}")
    for t, own, other in condition_value(args.run, args.images):
        print(f"{t:>4} {own:8.4f} {other:8.4f} {other - own:8.4f}")


if __name__ == "__main__":
    main()
