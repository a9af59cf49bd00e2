"""Bench results: cell records gathered from one or many output directories (shards), and the
flat table (one row per cell x metric) written as results.json and results.csv."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from protodiff.bench.cell import RECORD
from protodiff.errors import ProtodiffError
from protodiff.io import write_json, write_text

RUN = "run.json"


def load_run(directory: Path) -> dict[str, Any]:
    path = directory / RUN
    if not path.is_file():
        raise ProtodiffError(f"{directory}: not a bench output directory (no {RUN}); pass what `protodiff bench --out` wrote")
    return json.loads(path.read_text())


def gather(directories: list[Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run description and the records of every finished cell, in matrix order.

    Shards must come from the same bench (preset, seed, matrix); a cell found twice must agree.
    """
    runs = [load_run(d) for d in directories]
    first = runs[0]
    for directory, run in zip(directories[1:], runs[1:]):
        for key in ("preset", "seed", "matrix"):
            if run[key] != first[key]:
                raise ProtodiffError(f"{directory}: a different bench ({key} differs from {directories[0]}); merge shards of one bench")
    records: dict[str, dict[str, Any]] = {}
    for directory in directories:
        for path in sorted((directory / "cells").glob(f"*/{RECORD}")):
            record = json.loads(path.read_text())
            record["dir"] = str(path.parent.resolve())
            known = records.get(record["cell"])
            if known is not None and known["results"] != record["results"]:
                raise ProtodiffError(f"cell {record['cell']} appears in two directories with different results")
            records[record["cell"]] = record
    ordered = [records[name] for name in first["matrix"] if name in records]
    shards = sorted({tuple(run.get("shard", (0, 1))) for run in runs})
    return {**first, "shards": [list(s) for s in shards], "sources": [str(d) for d in directories]}, ordered


def separation(auroc: float) -> float:
    """How well a score separates an attribute, whichever way: max(AUC, 1 - AUC)."""
    return max(auroc, 1.0 - auroc)


def scalar(result: dict[str, Any]) -> tuple[float | None, float | None]:
    """(value, std over folds) of a metric result; a per-attribute best-dimension AUROC is
    summarised by the mean over attributes of max(AUC, 1 - AUC): a dimension that falls with an
    attribute separates it as well as one that rises."""
    if "mean" in result:
        return result["mean"], result.get("std")
    if "value" in result:
        return result["value"], None
    per = result.get("per_attribute")
    if isinstance(per, dict):
        values = [separation(v["auroc"]) for v in per.values() if isinstance(v, dict) and v.get("auroc") is not None]
        if values:
            return sum(values) / len(values), None
    return None, None


def rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per cell x metric."""
    table = []
    for record in records:
        for label, result in record["results"].items():
            value, std = scalar(result)
            table.append({
                "cell": record["cell"], "method": record["method"], "dataset": record["dataset"],
                "metric": result["metric"], "label": label, "value": value, "std": std,
                "folds": len(result.get("per_fold", [])) or None, "split": result.get("split"),
                "steps": record["steps"], "seed": record["seed"],
            })  # fmt: skip
    return table


def write_results(directory: Path, run: dict[str, Any], records: list[dict[str, Any]]) -> None:
    table = rows(records)
    write_json(directory / "results.json", {"run": run, "rows": table, "cells": records})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]) if table else ["cell"])
    writer.writeheader()
    writer.writerows(table)
    write_text(directory / "results.csv", buffer.getvalue())
