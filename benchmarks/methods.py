"""Patronus and its baselines side by side: parameters (conditioner, denoiser, prior) and train-step
throughput of each method's full model, in one run, as ratios to the first method.

The default methods are the CPU presets, which share one UNet (``tiny``), schedule and batch, so
what differs is each method's own part: Patronus' prototype encoder, DiffAE's semantic encoder
and 512-d code, InfoDiffusion's UNet-shaped encoder. A step is what training does (the
conditioner's encode, its regulariser, the denoising loss, backward, one AdamW step), measured as
``train_throughput.py`` measures it: each in a fresh process, rounds interleaved, the median kept.

    python benchmarks/methods.py                          # patronus-shapes, diffae-shapes, infodiff-shapes
    python benchmarks/methods.py --methods patronus-celeba,diffae-celeba,infodiff-celeba --image-size 64
    python benchmarks/methods.py --out methods.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

if not __package__:  # run as a file (python benchmarks/NAME.py): import its siblings as the package they are
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.harness import interleaved, machine
from benchmarks.train_throughput import measure

DEFAULT_METHODS = "patronus-shapes,diffae-shapes,infodiff-shapes"


def parameter_counts(name: str, image_size: int) -> dict[str, float]:
    """Millions of parameters of the preset's conditioner, denoiser and latent prior."""
    from protodiff.experiment import load_experiment
    from protodiff.model import ConditionedDiffusion

    config = load_experiment(name, [f"data.image_size={image_size}"])
    model = ConditionedDiffusion.from_experiment(config)
    prior = config.prior.build(dim=model.conditioner.dim) if config.prior is not None else None

    def millions(module: torch.nn.Module | None) -> float:
        return sum(p.numel() for p in module.parameters()) / 1e6 if module is not None else 0.0

    return {"conditioner_m": millions(model.conditioner), "denoiser_m": millions(model.denoiser), "prior_m": millions(prior)}


def run(args: argparse.Namespace) -> dict:
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    results = interleaved(names, measure, args, args.rounds)
    for name in names:
        results[name].update(parameter_counts(name, args.image_size))
    return {
        "workload": {
            k: getattr(args, k) for k in ("batch_size", "image_size", "channels", "steps", "warmup", "rounds", "device")
        },
        "results": results,
        "machine": machine(),
    }


def print_table(report: dict) -> None:
    results = report["results"]
    reference_name = next(iter(results))
    reference = results[reference_name]
    workload = report["workload"]
    print(
        f"train step, batch {workload['batch_size']}, {workload['image_size']} px, {workload['device']}, "
        f"{report['machine']['threads']} threads, median of {workload['rounds']} rounds; ratios to {reference_name}"
    )
    header = ["method", "conditioner M", "denoiser M", "prior M", "model M", "x params", "img/s", "x img/s"]
    print(" ".join(f"{h:>16}" if i == 0 else f"{h:>13}" for i, h in enumerate(header)))
    for name, r in results.items():
        row = [
            f"{name:>16}",
            f"{r['conditioner_m']:>13.3f}",
            f"{r['denoiser_m']:>13.3f}",
            f"{r['prior_m']:>13.3f}",
            f"{r['parameters_m']:>13.3f}",
            f"{r['parameters_m'] / reference['parameters_m']:>12.2f}x",
            f"{r['images_per_sec_median']:>13.2f}",
            f"{r['images_per_sec_median'] / reference['images_per_sec_median']:>12.2f}x",
        ]
        print(" ".join(row))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", default=DEFAULT_METHODS, help="Experiment presets, the first the reference.")
    parser.add_argument("--batch-size", type=int, default=32, help="Default: the CPU presets' batch.")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="Also write the report as JSON here.")
    args = parser.parse_args()
    report = run(args)
    print_table(report)
    if args.out:
        from protodiff.io import write_json

        write_json(args.out, report)


if __name__ == "__main__":
    main()
