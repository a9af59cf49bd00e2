"""``protodiff bench``: train, evaluate and report the methods x datasets matrix of a bench preset;
``protodiff bench report DIR...`` merges shard directories into one report."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from protodiff.cli.options import device_option, seed_option, set_option


@click.group(invoke_without_command=True)
@click.option("--preset", default="quick", show_default=True, help="A bench preset (quick, paper) or a YAML path.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [runs/bench-PRESET].")
@click.option("--data-root", type=click.Path(), default=None, help="Directory holding each dataset as DATA_ROOT/<name>.")
@click.option("--datasets", default=None, help="Comma-separated datasets instead of the preset's.")
@click.option("--methods", default=None, help="Comma-separated methods (conditioners) instead of the preset's.")
@click.option(
    "--shard", "shard_text", default="0/1", show_default=True, help="Run only shard I of N (I/N); merge with `bench report`."
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Cells trained side by side on a CPU, each on cores/jobs threads [the preset's].",
)
@click.option(
    "--retrain", is_flag=True, help="Run again the cells that OUT holds under other settings (else: an error naming them)."
)
@set_option
@seed_option
@device_option
@click.pass_context
def bench(
    ctx: click.Context,
    preset: str,
    out: str | None,
    data_root: str | None,
    datasets: str | None,
    methods: str | None,
    shard_text: str,
    jobs: int | None,
    retrain: bool,
    overrides: tuple[str, ...],
    seed: int | None,
    device: str,
) -> None:
    """Train, evaluate and report every (method, dataset) cell of a bench preset.

    Every cell is resolved and every dataset opened before the first trains. Finished cells run
    under the same settings are reused and unfinished training resumes, so rerunning the same
    command continues a bench; a cell run under other settings stops the bench with the keys that
    differ, unless --retrain.
    --set KEY=VALUE overrides every cell's experiment (e.g. --set train.steps=100).
    """
    if ctx.invoked_subcommand is not None:
        return
    from protodiff.bench.matrix import build_matrix, parse_shard
    from protodiff.bench.runner import run_bench
    from protodiff.bench.spec import load_bench

    name, spec = load_bench(preset)
    index_count = parse_shard(shard_text)
    split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None
    cells = build_matrix(spec, datasets=split(datasets), methods=split(methods), extra=overrides)
    directory = Path(out or f"runs/bench-{name}")
    command = shlex.join(["protodiff", *sys.argv[1:]])
    md, html = run_bench(
        name,
        spec,
        cells,
        directory,
        seed=0 if seed is None else seed,
        device=device,
        data_root=data_root,
        shard_of=index_count,
        command=command,
        retrain=retrain,
        jobs=jobs,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        click.echo(f"wrote {md} and {html}")


@bench.command("report")
@click.argument("dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Report directory [the first DIR].")
def report_command(dirs: tuple[str, ...], out: str | None) -> None:
    """Merge the cells of bench output directories DIRS (e.g. shards) into one report."""
    from protodiff.bench.runner import merged_report

    sources = [Path(d) for d in dirs]
    md, html = merged_report(Path(out) if out else sources[0], sources)
    click.echo(f"wrote {md} and {html}")
