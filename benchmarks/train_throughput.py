"""Training throughput and peak memory of our denoisers against a reference, in one run.

Every candidate does the same work per step: a batch of clean images, a random timestep and
noise per image, the epsilon-prediction MSE, backward, and one AdamW step. Each measurement runs
in a fresh process and rounds are interleaved across candidates (``harness.py``); the median
round is reported.

    python benchmarks/train_throughput.py                       # the published 32 px config
    python benchmarks/train_throughput.py --candidates unet-tiny,unet-paper --image-size 16
    python benchmarks/train_throughput.py --out results.json

Candidates:
    unet-paper     protodiff UNet, published Patronus config (base 64, mult 1,2,4,4, 2 blocks,
                   bottleneck attention, dropout 0.1), unconditional
    unet-paper-nchw  the same with channels_last off (what the NHWC layout buys)
    unet-tiny      protodiff UNet ``tiny`` preset
    <preset name>  the full model of any registered experiment preset (e.g. patronus-shapes),
                   conditioner included, at that preset's denoiser
    diffusers      diffusers.UNet2DModel with the published architecture (needs `pip install
                   diffusers`, the `bench` extra): the reference
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
from collections.abc import Callable

import torch
from harness import interleaved, machine, memory, peak_rss_mib, timed
from models import diffusers_unet, protodiff_model

DEFAULT_CANDIDATES = "unet-paper,unet-paper-nchw,diffusers"


def _protodiff_model(name: str, image_size: int, channels: int):
    model = protodiff_model(name, image_size, channels)
    generator = torch.Generator().manual_seed(0)
    return model, lambda x0: model(x0, generator)[0]


def _diffusers_model(image_size: int, channels: int):
    from protodiff.diffusion import NoiseSchedule, denoising_loss

    model = diffusers_unet(image_size, channels)
    schedule = NoiseSchedule()
    generator = torch.Generator().manual_seed(0)
    return model, lambda x0: denoising_loss(lambda x_t, t: model(x_t, t).sample, schedule, x0, generator)


def build(name: str, image_size: int, channels: int) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    if name == "diffusers":
        return _diffusers_model(image_size, channels)
    return _protodiff_model(name, image_size, channels)


def measure(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    """Run in a child process: build, warm up, time ``args.steps`` training steps."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    baseline = peak_rss_mib()
    model, loss_fn = build(name, args.image_size, args.channels)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.rand(args.batch_size, args.channels, args.image_size, args.image_size, device=device) * 2 - 1

    def step() -> None:
        loss = loss_fn(x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    elapsed = timed(device, step, args.steps)
    queue.put({"images_per_sec": args.steps * args.batch_size / elapsed, **memory(device, baseline, model)})


def run(args: argparse.Namespace) -> dict:
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    return {
        "workload": {k: getattr(args, k) for k in ("batch_size", "image_size", "channels", "steps", "warmup", "rounds", "device")},
        "results": interleaved(names, measure, args, args.rounds),
        "machine": machine(),
    }


def print_table(report: dict) -> None:
    results = report["results"]
    reference = results.get(report["reference"]) if report.get("reference") else None
    print(f"train step, batch {report['workload']['batch_size']}, {report['workload']['image_size']} px, "
          f"{report['workload']['device']}, {report['machine']['threads']} threads, median of {report['workload']['rounds']} rounds")
    print(f"{'candidate':>18} {'params (M)':>10} {'img/s':>8} {'vs ref':>7} {'peak RSS MiB':>13} {'(before model)':>15}")
    for name, r in results.items():
        ratio = f"{r['images_per_sec_median'] / reference['images_per_sec_median']:.2f}x" if reference else "-"
        print(f"{name:>18} {r['parameters_m']:>10.2f} {r['images_per_sec_median']:>8.2f} {ratio:>7} "
              f"{r['peak_rss_mib']:>13.0f} {r['rss_before_model_mib']:>15.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default=DEFAULT_CANDIDATES)
    parser.add_argument("--reference", default="diffusers", help="Candidate the others are compared with.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="Also write the report as JSON here.")
    args = parser.parse_args()
    report = run(args)
    report["reference"] = args.reference if args.reference in report["results"] else None
    print_table(report)
    if args.out:
        from protodiff.io import write_json

        write_json(args.out, report)


if __name__ == "__main__":
    main()
