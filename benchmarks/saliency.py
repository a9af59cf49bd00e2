"""DF-RISE and DF-CAM on a trained shapes run: do the maps fall on the marks, and what does DF-RISE cost?

For the first test images that carry at least one mark, each image is diffused to step ``--t``
(seeded noise) and explained under its own condition. A map's *mass inside the marks* is the share
of its mass above the map's own minimum (RISE maps have a floor: a pixel the prediction ignores
scores the mean score) that falls inside the ground-truth mark boxes (``shapes``' ``mark_boxes``),
against the share of the image those boxes cover and against a centre prior (a Gaussian bump at
the image centre) as a control; how alike the maps of different images are (one blob drawn on
every image is a pattern of the method, not of the model); then the insertion and deletion AUC of
every map, with a random map, a smooth random map and the centre prior as controls. Cost: seconds
per DF-RISE map, and its ratio to the plain denoiser forward passes it cannot avoid (N / batch
passes of ``batch`` images), in the same run, ``--rounds`` times.

    python benchmarks/saliency.py runs/ps --images 16 --t 300 --masks 500 [--baseline mean] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from protodiff import load_model
from protodiff_dfx.saliency import BASELINES, BORDERS, DFCam, DFRise, default_layer, insertion_deletion, rise_masks


def mass_inside(maps: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    above = maps - maps.flatten(1).min(dim=1).values[:, None, None]
    return (above * inside).flatten(1).sum(1) / above.flatten(1).sum(1).clamp_min(1e-12)


def shared(maps: torch.Tensor) -> float:
    """Mean Pearson correlation between the maps of different images: 1 for one map drawn on
    every image (a pattern of the method, not of the image), ~0 for maps that follow each image."""
    flat = maps.flatten(1) - maps.flatten(1).mean(1, keepdim=True)
    flat = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pairs = flat @ flat.T
    return ((pairs.sum() - pairs.diagonal().sum()) / (len(maps) * (len(maps) - 1))).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--t", type=int, default=300)
    parser.add_argument("--masks", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--baseline", choices=BASELINES, default="coverage", help="what DF-RISE takes out of its scores (DFRise's baseline)"
    )
    parser.add_argument("--border", choices=BORDERS, default="reflect", help="DF-RISE's SSIM border (DFRise's border)")
    parser.add_argument("--rounds", type=int, default=1, help="time DF-RISE and its plain passes this many times (0: maps only)")
    parser.add_argument("--layer", help="DF-CAM's block (default: the last at half the image size)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, config = load_model(args.run, device="cpu")
    model.eval()
    test = config.data.build().open("test")
    if not hasattr(test, "mark_boxes"):
        raise SystemExit(f"{config.data.name}: this benchmark needs a dataset that knows where its marks are (shapes)")
    picked = [i for i in range(len(test)) if test.mark_boxes(i)][: args.images]
    x0 = torch.stack([test[i][0] for i in picked])
    side = x0.shape[-1]
    inside = torch.zeros(len(picked), side, side)
    for row, index in enumerate(picked):
        for box in test.mark_boxes(index):
            inside[row, box.top : box.bottom, box.left : box.right] = 1
    generator = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.full((len(picked),), args.t, dtype=torch.long)
    x_t = model.schedule.q_sample(x0, t, noise)
    condition = model.encode(x0) if model.is_conditional else None

    rise = DFRise(model, num_masks=args.masks, batch_size=args.batch_size, baseline=args.baseline, border=args.border)
    passes = math.ceil(args.masks / args.batch_size)

    def explain() -> torch.Tensor:
        return rise.attribute(x_t, t=args.t, condition=condition, generator=torch.Generator().manual_seed(args.seed))

    rise_maps, timings = None if args.rounds else explain(), []
    for _ in range(args.rounds):  # alternated, so that load on a shared machine hits both alike
        start = time.perf_counter()
        rise_maps = explain()
        rise_seconds = (time.perf_counter() - start) / len(picked)
        start = time.perf_counter()
        with torch.inference_mode():
            for row in range(len(picked)):
                batch_x = x_t[row : row + 1].expand(args.batch_size, -1, -1, -1)
                vector = None if condition is None else condition.vector[row : row + 1].expand(args.batch_size, -1)
                for _ in range(passes):
                    model.eps_fn(vector, args.batch_size)(batch_x, torch.full((args.batch_size,), args.t))
        timings.append((rise_seconds, (time.perf_counter() - start) / len(picked)))

    layer = args.layer or default_layer(model)
    cam_maps = DFCam(model, layer=layer).attribute(x_t, t=args.t, condition=condition)
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centre = torch.exp(-((yy - (side - 1) / 2) ** 2 + (xx - (side - 1) / 2) ** 2) / (2 * (side / 4) ** 2))
    centre = centre.expand(len(picked), -1, -1) + 0.0

    random_map = torch.rand(len(picked), side, side, generator=torch.Generator().manual_seed(args.seed + 1))
    # Deleting scattered pixels hurts the prediction more than deleting a blob of the same size, so
    # a smooth map earns a higher insertion *and* deletion AUC for being smooth: a random map as
    # smooth as DF-RISE's (one of its masks) is the control for that, and insertion - deletion the summary.
    smooth_random = rise_masks(
        len(picked), side, side, cell=4, probability=0.5, generator=torch.Generator().manual_seed(args.seed + 2)
    )[:, 0]
    area = inside.flatten(1).mean(1).mean().item()
    print(
        f"{args.run}: {len(picked)} test images with marks, t = {args.t}, DF-RISE N = {args.masks} "
        f"(baseline {args.baseline}, border {args.border}), DF-CAM on {layer}"
    )
    print("| map | mass inside the marks | area of the marks | correlation between images' maps |")
    print("|---|---|---|---|")
    for label, maps in (("DF-RISE", rise_maps), ("DF-CAM", cam_maps), ("centre prior", centre)):
        share = mass_inside(maps, inside)
        print(f"| {label} | {share.mean():.3f} ± {share.std():.3f} | {area:.3f} | {shared(maps):.2f} |")
    print("\n| map | deletion AUC (lower is better) | insertion AUC (higher is better) | insertion - deletion |")
    print("|---|---|---|---|")
    controls = (("random", random_map), ("smooth random", smooth_random), ("centre prior", centre))
    for label, maps in (("DF-RISE", rise_maps), ("DF-CAM", cam_maps), *controls):
        curves = insertion_deletion(model, x_t, maps, t=args.t, condition=condition)
        gap = curves["insertion"] - curves["deletion"]
        print(
            f"| {label} | {curves['deletion'].mean():.3f} ± {curves['deletion'].std():.3f} | "
            f"{curves['insertion'].mean():.3f} ± {curves['insertion'].std():.3f} | {gap.mean():.3f} ± {gap.std():.3f} |"
        )
    for rise_seconds, plain_seconds in timings:
        print(
            f"DF-RISE: {rise_seconds:.2f} s per map; {passes} plain forward passes of {args.batch_size}: "
            f"{plain_seconds:.2f} s; ratio {rise_seconds / plain_seconds:.2f}x ({torch.get_num_threads()} threads)"
        )


if __name__ == "__main__":
    main()
