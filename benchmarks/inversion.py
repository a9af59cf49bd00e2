"""Inversion round trips and solver errors with an exact denoiser, against diffusers.

With data ~ N(0, 0.5^2) per pixel the exact eps predictor is known in closed form
(``protodiff.testing.gaussian_eps_oracle``), so every error measured here is the sampler's own.
Round trip: x0 -> invert -> x_T -> sample -> x0', max |x0' - x0| over the pixels, for

- ``ddim, eps at current t``: DDIM inversion evaluating eps at the point's own timestep (what
  protodiff did before it adopted diffusers' convention);
- ``ddim``: protodiff's DDIM inversion, eps at the step's target timestep;
- ``diffusers DDIMInverse``: diffusers' DDIMInverseScheduler then DDIMScheduler, on its own
  (``leading``) timesteps, in float32 (if diffusers is installed);
- ``dpm-solver++``: the multistep solver walked up then down (2M and 3M, both spacings).

Then the sampling error alone: x_T -> x0 against the exact solution of the probability-flow ODE.

    python benchmarks/inversion.py                 # linear and cosine schedules, 256 pixels
    python benchmarks/inversion.py --num 4096 --out inversion.json
"""

from __future__ import annotations

import argparse

import torch

from protodiff.contracts.sampler import Sampler
from protodiff.diffusion import DDIMSampler, DPMSolverPlusPlus, NoiseSchedule, ScheduleConfig
from protodiff.testing import gaussian_eps_oracle

STEPS = (10, 20, 50, 100, 250, 1000)
MEAN, STD = 0.0, 0.5


class DDIMAtCurrent(DDIMSampler):
    """DDIM inversion evaluating eps at the current point's own timestep (the old convention)."""

    invert_at = "current"


def samplers(schedule: NoiseSchedule, steps: int) -> dict[str, Sampler]:
    out: dict[str, Sampler] = {
        "ddim, eps at current t": DDIMAtCurrent(DDIMAtCurrent.Config(steps=steps), schedule=schedule),
        "ddim": DDIMSampler(DDIMSampler.Config(steps=steps), schedule=schedule),
    }
    if steps < schedule.num_timesteps:
        for order in (2, 3):
            for spacing in ("logsnr", "linspace"):
                config = DPMSolverPlusPlus.Config(steps=steps, order=order, spacing=spacing)
                out[f"dpm-solver++ {order}M {spacing}"] = DPMSolverPlusPlus(config, schedule=schedule)
    return out


def diffusers_round_trip(schedule_name: str, steps: int, eps_fn, x0: torch.Tensor) -> float | None:
    try:
        from diffusers import DDIMInverseScheduler, DDIMScheduler
    except ImportError:
        return None
    betas = "linear" if schedule_name == "linear" else "squaredcos_cap_v2"
    inverse = DDIMInverseScheduler(beta_schedule=betas, clip_sample=False, set_alpha_to_one=True)
    forward = DDIMScheduler(beta_schedule=betas, clip_sample=False, set_alpha_to_one=True)
    inverse.set_timesteps(steps)
    forward.set_timesteps(steps)
    x = x0.float()
    for scheduler in (inverse, forward):
        for t in scheduler.timesteps:
            eps = eps_fn(x.double(), torch.full((x.shape[0],), int(t))).float()
            x = scheduler.step(eps, int(t), x).prev_sample
    return (x.double() - x0).abs().max().item()


def measure(schedule_name: str, num: int, seed: int) -> dict:
    schedule = NoiseSchedule(ScheduleConfig(schedule=schedule_name))
    eps_fn = gaussian_eps_oracle(schedule, MEAN, STD)
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(num, dtype=torch.float64, generator=generator) * STD
    x_T = torch.randn(num, dtype=torch.float64, generator=generator)
    a = schedule.alphas_cumprod[-1].item()
    exact = MEAN + STD * (x_T - a**0.5 * MEAN) / (a * STD**2 + 1 - a) ** 0.5
    round_trip: dict[str, dict[int, float]] = {}
    solver: dict[str, dict[int, float]] = {}
    for steps in STEPS:
        for name, sampler in samplers(schedule, steps).items():
            again = sampler.sample(eps_fn, sampler.invert(eps_fn, x0))
            round_trip.setdefault(name, {})[steps] = (again - x0).abs().max().item()
            solver.setdefault(name.replace(", eps at current t", ""), {})[steps] = (
                (sampler.sample(eps_fn, x_T) - exact).abs().max().item()
            )
        reference = diffusers_round_trip(schedule_name, steps, eps_fn, x0)
        if reference is not None:
            round_trip.setdefault("diffusers DDIMInverse", {})[steps] = reference
    return {"round_trip_max_error": round_trip, "sampling_max_error": solver}


def print_table(title: str, rows: dict[str, dict[int, float]]) -> None:
    print(f"\n{title}\n| | " + " | ".join(f"{s} steps" for s in STEPS) + " |\n|---|" + "---|" * len(STEPS))
    for name, by_steps in rows.items():
        print(f"| {name} | " + " | ".join(f"{by_steps[s]:.2g}" if s in by_steps else "-" for s in STEPS) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num", type=int, default=256, help="Pixels (i.i.d. data values) per measurement.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="Also write the results as JSON here.")
    args = parser.parse_args()
    report = {name: measure(name, args.num, args.seed) for name in ("linear", "cosine")}
    for name, result in report.items():
        print_table(f"{name} schedule: round trip x0 -> x_T -> x0, max error", result["round_trip_max_error"])
        print_table(
            f"{name} schedule: sampling x_T -> x0 against the exact ODE solution, max error", result["sampling_max_error"]
        )
    if args.out:
        from protodiff.io import write_json

        write_json(args.out, {"num": args.num, "seed": args.seed, "data": f"N({MEAN}, {STD}^2)", "results": report})


if __name__ == "__main__":
    main()
