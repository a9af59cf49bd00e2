"""Sampling: throughput against diffusers at equal steps, and quality against the number of steps.

``throughput``: images per second of a full sampling run (x_T to x_0, every denoiser call and
every solver step) of the published 32 px Patronus UNet (unconditional, eps-prediction),
protodiff's ``ddim`` and ``dpm-solver++`` against diffusers' ``UNet2DModel`` of the same
architecture driven by its ``DDIMScheduler`` and ``DPMSolverMultistepScheduler`` (default
settings, the loop of its pipelines, under ``torch.inference_mode``), at the same number of
steps. Each measurement runs in a fresh process, rounds interleaved (``harness.py``); the ratio
is protodiff's time per image over diffusers' for the same solver. Needs diffusers (the ``bench``
extra).

``quality``: on a trained conditional run, the test images regenerated from their condition
(fresh noise, the same noise and conditions for every setting) by DDIM at 1000/250/50/20 steps
and dpm-solver++ at 50/20/10 (2M; and 3M at 20/10), judged by

- reconstruction agreement: how often the attribute classifier (trained on the train split, the
  judge of ``reconstruction-agreement``) calls each attribute the same in an image and its
  regeneration;
- FD_attribute-classifier: the Fréchet distance of the regenerations to the whole test split in
  that classifier's features (the ``fid`` metric's ``attribute-classifier`` extractor);
- the mean absolute pixel difference to DDIM-1000's image from the same noise and condition.

The noise of a measurement is the bootstrap standard error (over images) of DDIM-250's value; a
setting is "within the noise" of DDIM-250 when both its metrics differ from DDIM-250's by at most
two of those. The table names the fastest such setting. DDIM-250 is also rerun on a second noise
draw, as a check on that noise level.

    python benchmarks/sampling.py throughput                          # 20 steps, batch 16
    python benchmarks/sampling.py throughput --steps 50 --batch-size 64 --rounds 5
    python benchmarks/sampling.py quality runs/ps --num-images 500 --out quality.json
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as a file (python benchmarks/NAME.py): import its siblings as the package they are
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.harness import interleaved, machine, memory, peak_rss_mib, timed
from benchmarks.models import diffusers_unet, protodiff_model

SOLVERS = ("ddim", "dpm-solver++")
#: (sampler, steps, options) of the quality table: DDIM as published and shorter, the new solver.
SETTINGS = (
    ("ddim", 1000, {}),
    ("ddim", 250, {}),
    ("ddim", 50, {}),
    ("ddim", 20, {}),
    ("dpm-solver++", 50, {}),
    ("dpm-solver++", 20, {}),
    ("dpm-solver++", 10, {}),
    ("dpm-solver++", 20, {"order": 3}),
    ("dpm-solver++", 10, {"order": 3}),
)
BASELINE = ("ddim", 250, {})
REFERENCE = ("ddim", 1000, {})


# -- throughput -----------------------------------------------------------------------------------
def _diffusers_scheduler(solver: str):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    # Defaults are DDPM's schedule (1000 linear betas 1e-4..0.02, eps), as the published config.
    return DDIMScheduler() if solver == "ddim" else DPMSolverMultistepScheduler()


def measure_throughput(name: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    """Run in a child process: build, warm up with a 2-step run, time ``args.repeats`` full runs."""
    library, solver = name.split(":")
    device = torch.device(args.device)
    baseline = peak_rss_mib()
    shape = (args.batch_size, args.channels, args.image_size, args.image_size)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(device)
    if library == "protodiff":
        model = protodiff_model("unet-paper", args.image_size, args.channels).to(device).eval()

        def run(steps: int) -> torch.Tensor:
            return model.sample(x_T=x_T, sampler=model.sampler(solver, steps=steps))
    else:
        model = diffusers_unet(args.image_size, args.channels).to(device).eval()
        scheduler = _diffusers_scheduler(solver)

        @torch.inference_mode()
        def run(steps: int) -> torch.Tensor:
            scheduler.set_timesteps(steps, device=device)
            x = x_T
            for t in scheduler.timesteps:
                x = scheduler.step(model(x, t).sample, t, x).prev_sample
            return x

    run(2)
    elapsed = timed(device, lambda: run(args.steps), args.repeats)
    queue.put({"images_per_sec": args.repeats * args.batch_size / elapsed, **memory(device, baseline, model)})


def throughput(args: argparse.Namespace) -> dict:
    names = [f"{library}:{solver}" for solver in SOLVERS for library in ("protodiff", "diffusers")]
    results = interleaved(names, measure_throughput, args, args.rounds)
    ratios = {
        solver: results[f"diffusers:{solver}"]["images_per_sec_median"] / results[f"protodiff:{solver}"]["images_per_sec_median"]
        for solver in SOLVERS
    }
    keys = ("steps", "batch_size", "image_size", "channels", "repeats", "rounds", "device")
    return {
        "workload": {k: getattr(args, k) for k in keys},
        "results": results,
        "time_per_image_vs_diffusers": ratios,
        "machine": machine(),
    }


def print_throughput(report: dict) -> None:
    w, m = report["workload"], report["machine"]
    print(
        f"full sampling run, {w['steps']} steps, batch {w['batch_size']}, {w['image_size']} px, {w['device']}, "
        f"{m['threads']} threads, load {m['load_average_1_5_15']}, median of {w['rounds']} rounds"
    )
    print(f"{'candidate':>24} {'img/s':>8} {'peak RSS MiB':>13} {'peak CUDA MiB':>14}")
    for name, r in report["results"].items():
        cuda = f"{r['peak_cuda_mib']:.0f}" if r["peak_cuda_mib"] is not None else "-"
        print(f"{name:>24} {r['images_per_sec_median']:>8.3f} {r['peak_rss_mib']:>13.0f} {cuda:>14}")
    for solver, ratio in report["time_per_image_vs_diffusers"].items():
        print(f"{solver}: protodiff's time per image = {ratio:.3f}x diffusers'")


# -- quality ------------------------------------------------------------------------------------
def _label(setting: tuple[str, int, dict]) -> str:
    name, steps, options = setting
    return f"{name} {steps}" + "".join(f" {k}={v}" for k, v in options.items())


def _judge(config, args: argparse.Namespace, train):
    """The attribute classifier: loaded from --classifier, else trained on the train split and
    saved in the output directory (its directory is the FD extractor's weights)."""
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    if args.classifier:
        return AttributeClassifier.load(args.classifier), Path(args.classifier)
    judge = AttributeClassifier.for_dataset(train, ClassifierConfig(steps=args.classifier_steps, seed=args.seed))
    judge.fit(train, progress=True)
    path = judge.save(Path(args.work_dir) / "attribute-classifier")
    return judge, path


def _features(judge, images: torch.Tensor) -> torch.Tensor:
    """The classifier's pooled features of images as the FD extractor sees them (uint8 RGB)."""
    from protodiff.metrics.fidelity.images import to_uint8_rgb

    x = to_uint8_rgb(images).float() / 127.5 - 1.0
    if judge.in_channels == 1:
        x = x.mean(dim=1, keepdim=True)
    with torch.no_grad():
        return torch.cat([judge.features(chunk).double().cpu() for chunk in x.split(256)])


def _fd(features: torch.Tensor, real_stats: dict) -> float:
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric

    return fid_statistics_to_metric(fid_features_to_statistics(features), real_stats, False)[KEY_METRIC_FID]


def quality(args: argparse.Namespace) -> dict:
    from torch_fidelity.metric_fid import fid_features_to_statistics

    from protodiff.checkpoint import load_model
    from protodiff.devices import resolve_device

    model, config = load_model(args.run, device=resolve_device(args.device))
    source = config.data.build()
    test, train = source.open("test"), source.open("train")
    judge, judge_path = _judge(config, args, train)
    judge.to(model.device)
    count = min(args.num_images, len(test))
    real = torch.stack([test[i][0] for i in range(count)])
    vectors = torch.cat([model.encode(chunk).vector.detach().cpu() for chunk in real.split(args.batch_size)])
    noises = [model.noise(count, torch.Generator().manual_seed(seed)).cpu() for seed in (args.seed, args.seed + 1)]
    truth = judge.predict_proba(real) > 0.5
    real_stats = fid_features_to_statistics(_features(judge, torch.stack([test[i][0] for i in range(len(test))])))
    bootstrap = torch.randint(0, count, (args.bootstrap, count), generator=torch.Generator().manual_seed(args.seed))

    def evaluate(setting: tuple[str, int, dict], noise: torch.Tensor) -> dict:
        name, steps, options = setting
        sampler = model.sampler(name, steps=steps, **options)
        start = time.perf_counter()
        images = torch.cat(
            [
                model.sample(condition=v, x_T=x, sampler=sampler).cpu()
                for v, x in zip(vectors.split(args.batch_size), noise.split(args.batch_size))
            ]
        )
        seconds = time.perf_counter() - start
        agreement = ((judge.predict_proba(images) > 0.5) == truth).double().mean(dim=1)
        features = _features(judge, images)
        print(
            f"{_label(setting):>28}: agreement {agreement.mean():.4f}, FD {_fd(features, real_stats):.4f}, {seconds:.0f} s",
            file=sys.stderr,
        )
        return {
            "setting": _label(setting),
            "denoiser_calls": len(sampler.timesteps()),
            "seconds": seconds,
            "images": images,
            "agreement": agreement,
            "features": features,
        }

    runs = {_label(s): evaluate(s, noises[0]) for s in SETTINGS}
    base, reference = runs[_label(BASELINE)], runs[_label(REFERENCE)]
    second_draw = evaluate(BASELINE, noises[1])

    def boot(run: dict) -> tuple[np.ndarray, np.ndarray]:
        agreements = np.array([run["agreement"][idx].mean().item() for idx in bootstrap])
        fds = np.array([_fd(run["features"][idx], real_stats) for idx in bootstrap])
        return agreements, fds

    base_agreement, base_fd = boot(base)
    noise = {"agreement": 2 * base_agreement.std(), "fd": 2 * base_fd.std()}
    rows = []
    for label, run in runs.items():
        agreement, fd = run["agreement"].mean().item(), _fd(run["features"], real_stats)
        delta = {"agreement": agreement - base["agreement"].mean().item(), "fd": fd - _fd(base["features"], real_stats)}
        rows.append(
            {
                "setting": label,
                "denoiser_calls": run["denoiser_calls"],
                "seconds": round(run["seconds"], 1),
                "agreement": agreement,
                "fd": fd,
                "pixel_distance_to_ddim_1000": (run["images"] - reference["images"]).abs().mean().item(),
                "delta_vs_ddim_250": delta,
                "within_noise_of_ddim_250": all(abs(delta[k]) <= noise[k] for k in noise),
            }
        )
    eligible = [r for r in rows if r["within_noise_of_ddim_250"]]
    chosen = min(eligible, key=lambda r: r["denoiser_calls"])["setting"] if eligible else None
    second = {
        "agreement": second_draw["agreement"].mean().item() - base["agreement"].mean().item(),
        "fd": _fd(second_draw["features"], real_stats) - _fd(base["features"], real_stats),
    }
    return {
        "run": str(args.run),
        "num_images": count,
        "num_real": len(test),
        "judge": str(judge_path),
        "judge_test_accuracy": judge.accuracy(test),
        "noise_two_bootstrap_se_of_ddim_250": noise,
        "ddim_250_second_noise_draw_delta": second,
        "rows": rows,
        "chosen": chosen,
        "machine": machine(),
    }


def print_quality(report: dict) -> None:
    noise = report["noise_two_bootstrap_se_of_ddim_250"]
    print(
        f"{report['run']}: {report['num_images']} test images regenerated from their condition; "
        f"FD against all {report['num_real']} test images"
    )
    print(
        f"noise (2 bootstrap SE of DDIM 250): agreement {noise['agreement']:.4f}, FD {noise['fd']:.4f}; "
        f"DDIM 250 on another noise draw moves them by {report['ddim_250_second_noise_draw_delta']['agreement']:+.4f}, "
        f"{report['ddim_250_second_noise_draw_delta']['fd']:+.4f}"
    )
    print(
        "| setting | denoiser calls | agreement | FD_attribute-classifier | pixel distance to DDIM 1000 | within noise of DDIM 250 |"
    )
    print("|---|---|---|---|---|---|")
    for r in report["rows"]:
        print(
            f"| {r['setting']} | {r['denoiser_calls']} | {r['agreement']:.4f} | {r['fd']:.4f} | "
            f"{r['pixel_distance_to_ddim_1000']:.4f} | {'yes' if r['within_noise_of_ddim_250'] else 'no'} |"
        )
    print(f"fastest within the noise of DDIM 250: {report['chosen']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fast = commands.add_parser("throughput", help="images/s against diffusers at equal steps")
    fast.add_argument("--steps", type=int, default=20)
    fast.add_argument("--batch-size", type=int, default=16)
    fast.add_argument("--image-size", type=int, default=32)
    fast.add_argument("--channels", type=int, default=3)
    fast.add_argument("--repeats", type=int, default=1, help="Timed full runs per measurement.")
    fast.add_argument("--rounds", type=int, default=3)
    fast.add_argument("--device", default=device)
    fast.add_argument("--out", help="Also write the report as JSON here.")
    good = commands.add_parser("quality", help="the quality-vs-steps table on a trained conditional run")
    good.add_argument("run", help="A run directory or checkpoint (e.g. of patronus-shapes).")
    good.add_argument("--num-images", type=int, default=500)
    good.add_argument("--batch-size", type=int, default=100)
    good.add_argument("--classifier", help="A saved attribute classifier (default: train one, 400 steps).")
    good.add_argument("--classifier-steps", type=int, default=400)
    good.add_argument("--work-dir", default="runs/sampling-quality", help="Where a trained classifier is saved.")
    good.add_argument("--bootstrap", type=int, default=200)
    good.add_argument("--seed", type=int, default=0)
    good.add_argument("--device", default=device)
    good.add_argument("--out", help="Also write the report as JSON here.")
    args = parser.parse_args()
    report, show = (throughput(args), print_throughput) if args.command == "throughput" else (quality(args), print_quality)
    show(report)
    if args.out:
        from protodiff.io import write_json

        write_json(args.out, report)


if __name__ == "__main__":
    main()
