"""Training throughput and peak memory of our denoisers against a reference, in one run.

Every candidate does the same work per step. A denoiser candidate (``unet-*``, ``diffusers``): a
batch of clean images, a random timestep and noise per image, the epsilon-prediction MSE,
backward, and one AdamW step. A preset candidate: exactly what ``protodiff train`` does per step
(the trainer's own ``train_step``: the conditioner, its regulariser, the loss, clipping, AdamW, the
scheduler and the EMA), on batches the trainer serves. Each measurement runs in a fresh process
and rounds are interleaved across candidates (``harness.py``); the median round is reported.

A candidate may carry a mode, ``NAME:MODE``: ``fp32`` (eager, the reference of its name),
``bf16`` (autocast, fp32 master weights), ``compiled`` (``torch.compile`` in the precision the
trainer picks here) or ``fp32-compiled``. Achieved FLOP/s (forward and backward, counted by
``torch.utils.flop_counter`` on the fp32 step) is set against this machine's fp32 and bf16 peak
rates (a large matrix product and a large convolution), measured in the same run.

    python benchmarks/train_throughput.py                       # the published 32 px config
    python benchmarks/train_throughput.py --cpu-presets         # every CPU preset: fp32, bf16, compiled
    python benchmarks/train_throughput.py --candidates patronus-shapes:fp32,patronus-shapes:bf16
    python benchmarks/train_throughput.py --out results.json

Candidates:
    unet-paper     protodiff UNet, published Patronus config (base 64, mult 1,2,4,4, 2 blocks,
                   bottleneck attention, dropout 0.1), unconditional
    unet-paper-nchw  the same with channels_last off (what the NHWC layout buys)
    unet-tiny      protodiff UNet ``tiny`` preset
    <preset name>  the full model of any registered experiment preset (e.g. patronus-shapes),
                   trained by protodiff's trainer
    diffusers      diffusers.UNet2DModel with the published architecture (needs `pip install
                   diffusers`, the `bench` extra): the reference
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

if not __package__:  # run as a file (python benchmarks/NAME.py): import its siblings as the package they are
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from benchmarks.harness import interleaved, machine, memory, peak_rss_mib, timed
from benchmarks.models import UNETS, diffusers_unet, protodiff_model

DEFAULT_CANDIDATES = "unet-paper,unet-paper-nchw,diffusers"
MODES = ("fp32", "bf16", "compiled", "fp32-compiled")
#: ``--cpu-presets``: the presets sized for a CPU (the bundled datasets).
CPU_PRESET_SUFFIXES = ("-shapes", "-digits")


def split_candidate(candidate: str) -> tuple[str, str]:
    name, _, mode = candidate.partition(":")
    mode = mode or "fp32"
    if mode not in MODES:
        raise SystemExit(f"{candidate}: unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return name, mode


def cpu_presets() -> list[str]:
    from protodiff import registries

    return sorted(n for n in registries().preset.names() if n.endswith(CPU_PRESET_SUFFIXES))


# -- the work of one step ----------------------------------------------------------------------
def _denoiser_step(name: str, mode: str, args: argparse.Namespace) -> tuple[torch.nn.Module, Callable[[], None]]:
    """A bare denoiser's training step (``unet-*`` or ``diffusers``), autocast in ``bf16`` mode."""
    from protodiff.diffusion import NoiseSchedule, denoising_loss

    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    if name == "diffusers":
        model = diffusers_unet(args.image_size, args.channels)
        schedule = NoiseSchedule()

        def loss_fn(x0: torch.Tensor) -> torch.Tensor:
            return denoising_loss(lambda x_t, t: model(x_t, t).sample, schedule, x0, generator)
    else:
        model = protodiff_model(name, args.image_size, args.channels)

        def loss_fn(x0: torch.Tensor) -> torch.Tensor:
            return model(x0, generator)[0]

    model.to(device).train()
    network = torch.compile(loss_fn) if mode.endswith("compiled") else loss_fn
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x0 = torch.rand(args.batch_size, args.channels, args.image_size, args.image_size, device=device) * 2 - 1
    autocast = mode in ("bf16", "compiled")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = network(x0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return model, step


def _trainer_step(name: str, mode: str, args: argparse.Namespace) -> tuple[torch.nn.Module, Callable[[], None]]:
    """A preset's step as ``protodiff train`` runs it (a throw-away run directory)."""
    from protodiff.experiment import load_experiment
    from protodiff.training import Trainer

    precision = {"fp32": "fp32", "bf16": "bf16", "compiled": "auto", "fp32-compiled": "fp32"}[mode]
    overrides = [
        f"train.batch_size={args.batch_size}",
        f"train.precision={precision}",
        f"train.compile={str(mode.endswith('compiled')).lower()}",
        "train.steps=1000000",
    ]
    trainer = Trainer(
        load_experiment(name, overrides), tempfile.mkdtemp(prefix="throughput-"), device=args.device, progress=False
    )
    batches = trainer.batches.from_step(0)
    return trainer.model, lambda: trainer.train_step(next(batches))


def build_step(candidate: str, args: argparse.Namespace) -> tuple[torch.nn.Module, Callable[[], None]]:
    name, mode = split_candidate(candidate)
    if name == "diffusers" or name in UNETS:
        return _denoiser_step(name, mode, args)
    return _trainer_step(name, mode, args)


def measure(candidate: str, args: argparse.Namespace, queue: mp.Queue) -> None:
    """Run in a child process: build, warm up (compiling, if asked), time ``args.steps`` steps."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    baseline = peak_rss_mib()
    model, step = build_step(candidate, args)
    started = time.perf_counter()
    step()  # a compiled candidate compiles here
    first_step_s = time.perf_counter() - started
    for _ in range(args.warmup):
        step()
    elapsed = timed(device, step, args.steps)
    queue.put(
        {
            "images_per_sec": args.steps * args.batch_size / elapsed,
            "first_step_s": first_step_s,
            **memory(device, baseline, model),
        }
    )


# -- what the machine can do -------------------------------------------------------------------
def step_flops(candidate: str, args: argparse.Namespace) -> float:
    """Floating-point operations of one fp32 eager training step's forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    name, _ = split_candidate(candidate)
    _, step = build_step(f"{name}:fp32", args)
    step()  # a lazily initialised layer (prototypes placed on the first batch) settles first
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def peak_rates(rounds: int = 3) -> dict[str, dict[str, float]]:
    """GFLOP/s of the densest work this machine does, in fp32 and bf16: a 2048^2 matrix product
    (``torch.matmul``: MKL's sgemm in fp32, oneDNN in bf16) and a 512-channel 3x3 convolution at
    32 px, batch 64 (oneDNN); the larger is the ceiling a training step can approach. (On AMD
    CPUs MKL's sgemm reaches about half of what oneDNN's fp32 convolutions do, so a matmul alone
    would understate the fp32 ceiling.)"""

    def rate(work: Callable[[], object], flops: float, repeats: int) -> float:
        for _ in range(2):
            work()
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(repeats):
                work()
            samples.append(flops * repeats / (time.perf_counter() - started) / 1e9)
        return statistics.median(samples)

    rates: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
            x = torch.randn(64, 512, 32, 32, dtype=dtype).contiguous(memory_format=torch.channels_last)
            conv = torch.nn.Conv2d(512, 512, 3, padding=1, bias=False).to(dtype).to(memory_format=torch.channels_last)
            matmul = rate(lambda: a @ b, 2 * 2048**3, 5)  # noqa: B023 (called before the loop moves on)
            convolution = rate(lambda: conv(x), 2 * 64 * 32 * 32 * 512 * 512 * 9, 2)  # noqa: B023
            rates[label] = {"matmul": matmul, "conv3x3": convolution, "peak": max(matmul, convolution)}
    return rates


def run(args: argparse.Namespace) -> dict:
    names = [n.strip() for n in args.candidates.split(",") if n.strip()]
    results = interleaved(names, measure, args, args.rounds)
    report: dict = {
        "workload": {
            k: getattr(args, k) for k in ("batch_size", "image_size", "channels", "steps", "warmup", "rounds", "device")
        },
        "results": results,
        "machine": machine(),
    }
    if args.flops:
        flops = {split_candidate(n)[0]: None for n in names}
        for name in flops:
            flops[name] = step_flops(name, args)
        for candidate, result in results.items():
            step_gflop = flops[split_candidate(candidate)[0]] / 1e9
            result["gflop_per_step"] = step_gflop
            result["gflop_per_sec"] = step_gflop * result["images_per_sec_median"] / args.batch_size
        if args.device == "cpu":
            report["peak_gflop_per_sec"] = peak_rates()
    return report


def print_table(report: dict) -> None:
    results = report["results"]
    reference = results.get(report["reference"]) if report.get("reference") else None
    peaks = report.get("peak_gflop_per_sec")
    workload = report["workload"]
    print(
        f"train step, batch {workload['batch_size']}, {workload['image_size']} px, {workload['device']}, "
        f"{report['machine']['threads']} threads, median of {workload['rounds']} rounds"
    )
    if peaks:
        print(
            "this machine, GFLOP/s: "
            + "; ".join(f"{k} matmul {v['matmul']:.0f}, 3x3 conv {v['conv3x3']:.0f}" for k, v in peaks.items())
        )
    print(
        f"{'candidate':>28} {'params (M)':>10} {'img/s':>8} {'vs ref':>7} {'vs fp32':>8} {'GFLOP/s':>8} "
        f"{'% fp32 peak':>11} {'% bf16 peak':>11} {'1st step s':>10} {'peak RSS MiB':>13}"
    )
    for candidate, r in results.items():
        name, _mode = split_candidate(candidate)
        fp32 = results.get(name) or results.get(f"{name}:fp32")
        ratio = f"{r['images_per_sec_median'] / reference['images_per_sec_median']:.2f}x" if reference else "-"
        own = f"{r['images_per_sec_median'] / fp32['images_per_sec_median']:.2f}x" if fp32 else "-"
        rate = r.get("gflop_per_sec")
        shares = [f"{100 * rate / peaks[k]['peak']:.0f}%" if rate and peaks else "-" for k in ("fp32", "bf16")]
        print(
            f"{candidate:>28} {r['parameters_m']:>10.2f} {r['images_per_sec_median']:>8.2f} {ratio:>7} {own:>8} "
            f"{(f'{rate:.1f}' if rate else '-'):>8} {shares[0]:>11} {shares[1]:>11} {r['first_step_s']:>10.1f} "
            f"{r['peak_rss_mib']:>13.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", default=DEFAULT_CANDIDATES, help="NAME[:MODE],...")
    parser.add_argument(
        "--cpu-presets", action="store_true", help="Every CPU preset (*-shapes, *-digits) in each of --modes; ratios to its fp32."
    )
    parser.add_argument("--modes", default="fp32,bf16,compiled", help="With --cpu-presets: the modes to time.")
    parser.add_argument("--reference", default="diffusers", help="Candidate the others are compared with.")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-flops", dest="flops", action="store_false", help="Skip FLOP counting and GEMM rates.")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", help="Also write the report as JSON here.")
    args = parser.parse_args()
    if args.cpu_presets:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        args.candidates = ",".join(f"{p}:{m}" for p in cpu_presets() for m in modes)
        args.batch_size = 32 if args.batch_size == 16 else args.batch_size  # the CPU presets' batch
    report = run(args)
    report["reference"] = args.reference if args.reference in report["results"] else None
    print_table(report)
    if args.out:
        from protodiff.io import write_json

        write_json(args.out, report)


if __name__ == "__main__":
    main()
