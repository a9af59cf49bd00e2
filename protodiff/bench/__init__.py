"""``protodiff bench``: the methods x datasets matrix, trained, evaluated and reported in one run.

A bench preset (``presets/*.yaml``, or a YAML path) names datasets, methods, training overrides,
metrics and explainers. :mod:`~protodiff.bench.matrix` turns it into cells (one experiment preset
``METHOD-DATASET`` each, so a plugin's conditioner or dataset joins the matrix by registering that
preset); :mod:`~protodiff.bench.preflight` resolves every cell before anything trains;
:mod:`~protodiff.bench.cell` trains (or resumes, or reuses) and evaluates one cell;
:mod:`~protodiff.bench.results` collects cell records from one or many (shard) directories;
:mod:`~protodiff.bench.report` writes REPORT.md and a self-contained report.html.
"""

from protodiff.bench.spec import BenchSpec, load_bench

__all__ = ["BenchSpec", "load_bench"]
