"""Wall time of each ``protodiff explain`` command on a trained shapes run, against plain sampling.

Each row of :data:`COMMANDS` is one explain command (its arguments after the run); it is run in
this process through the CLI exactly as a user types it (the reference's warm-up has loaded the model code),
and timed end to end (loading the checkpoint, the data, the explainer, writing its output). The
reference, timed in the same run, is the work every generating explainer cannot avoid: inverting
``--n`` real images and regenerating them once with the same sampler (``model.reconstruct``), so a
ratio of 2 means "as much as two round trips". Add a row to time a new explainer. The rows in
:data:`JUDGED` need an attribute classifier (``--classifier DIR``); without one they are skipped.

    python benchmarks/explain.py runs/ps --n 4 --steps 20 [--classifier DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from click.testing import CliRunner

from protodiff import load_model
from protodiff.cli import main as cli

#: name -> arguments after ``protodiff explain NAME RUN`` (the common --n/--seed/--set sampler.steps are added).
COMMANDS: dict[str, list[str]] = {
    "edit --to": ["edit", "--to", "proto_00=3.0"],
    "edit --sweep (5 values)": ["edit", "--sweep", "proto_00=0:3:5"],
    "interpolate (5 points)": ["interpolate", "--set", "steps=5"],
    "prototypes (4 prototypes)": [
        "prototypes",
        "--prototypes",
        "0",
        "--prototypes",
        "1",
        "--prototypes",
        "2",
        "--prototypes",
        "3",
        "--set",
        "reference=256",
    ],
}
#: Rows that judge attributes: run only with ``--classifier`` (passed on to them).
JUDGED: dict[str, list[str]] = {
    "effects": ["effects", "--set", "reference=256"],
    "shortcuts": ["shortcuts", "--set", "reference=256"],
    "emergence": ["emergence", "--set", "reference=256"],
    "emergence + partial (5 starts)": ["emergence", "--set", "reference=256", "--set", "partial_starts=5"],
}


def run_command(run: str, arguments: list[str], common: list[str], out: Path) -> float:
    start = time.perf_counter()
    result = CliRunner().invoke(cli, ["explain", arguments[0], run, *arguments[1:], *common, "--out", str(out)])
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise SystemExit(f"{' '.join(arguments)} failed: {result.output.strip()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=4, help="images per command")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps (inversion and generation)")
    parser.add_argument("--only", action="append", help="time only the rows whose name starts with this")
    parser.add_argument("--classifier", help="an attribute classifier for the rows that judge attributes")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model, config = load_model(args.run, device="cpu")
    model.eval()
    x0 = torch.stack([config.data.build().open("test")[i][0] for i in range(args.n)])
    sampler = model.sampler("ddim", steps=args.steps)
    model.reconstruct(x0, sampler=sampler)  # warm-up
    start = time.perf_counter()
    model.reconstruct(x0, sampler=sampler)
    reference = time.perf_counter() - start

    common = ["--n", str(args.n), "--seed", "0", "--device", "cpu", "--set", f"sampler.steps={args.steps}"]
    judged = (
        {name: [*arguments, "--classifier", args.classifier] for name, arguments in JUDGED.items()} if args.classifier else {}
    )
    rows = {
        name: arguments
        for name, arguments in {**COMMANDS, **judged}.items()
        if not args.only or name.startswith(tuple(args.only))
    }
    print(f"run {args.run}, {args.n} images, DDIM {args.steps} steps, 1 thread")
    print(f"reference: invert + regenerate {args.n} images (model.reconstruct): {reference:.2f} s\n")
    print("| command | wall s | x reference |\n|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, arguments) in enumerate(rows.items()):
            seconds = run_command(args.run, arguments, common, Path(tmp) / str(k))
            print(f"| explain {name} | {seconds:.2f} | {seconds / reference:.2f} |", flush=True)


if __name__ == "__main__":
    main()
