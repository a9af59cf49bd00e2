"""Bench results: cell records gathered from one or many output directories (shards), and the
flat table (one row per cell x metric) written as results.json and results.csv."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from protodiff.bench.cell import RECORD
from protodiff.errors import ProtodiffError
from protodiff.io import write_json, write_text
from protodiff.schema import ANY, OptionalKey, ValuesOf, read_json

RUN = "run.json"
#: The keys of ``run.json`` that merging shards and the report read.
RUN_SCHEMA = {
    "preset": str,
    "seed": int,
    "matrix": [str],
    "shard": OptionalKey([int]),
    "command": str,
    "notes": OptionalKey(str),
    "left_out": OptionalKey(ValuesOf(str)),
    "started": OptionalKey(str),
    "wall_s": OptionalKey(float),
    "environment": {"versions": dict, "machine": str},
}
#: Each entry of a record's ``results``: a metric's result as protodiff.evaluate returns it.
RESULT_SCHEMA = {
    "metric": str,
    "mean": OptionalKey(float),
    "std": OptionalKey(float),
    "value": OptionalKey(ANY),
    "per_attribute": OptionalKey(dict),
    "per_fold": OptionalKey(list),
    "split": OptionalKey(str),
}
#: The keys of a cell's ``cell.json`` that the tables, the report and a rerun read.
RECORD_SCHEMA = {
    "cell": str, "method": str, "dataset": str, "seed": int, "steps": int, "trained_now": int,
    "train_s": float, "eval_s": float, "wall_s": float, "peak_rss_mib": float,
    "images_per_s": OptionalKey(float), "peak_cuda_mib": OptionalKey(float), "judge": OptionalKey(dict),
    "prior": OptionalKey(dict), "results": ValuesOf(RESULT_SCHEMA), "figures": ValuesOf(str),
    "explainers": ValuesOf(dict), "left_out": OptionalKey(ValuesOf(str)),
}  # fmt: skip


def load_run(directory: Path) -> dict[str, Any]:
    """``run.json`` of a bench output directory, checked against its schema."""
    path = directory / RUN
    if not path.is_file():
        raise ProtodiffError(f"{directory}: not a bench output directory (no {RUN}); pass what `protodiff bench --out` wrote")
    return read_json(path, RUN_SCHEMA, fix="choose another --out, or delete the directory to start the bench again")


def load_record(path: Path) -> dict[str, Any]:
    """A finished cell's ``cell.json``, checked against its schema (each result's too)."""
    return read_json(path, RECORD_SCHEMA, fix=f"delete {path.parent} to run the cell again")


def gather(directories: list[Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run description and the records of every finished cell, in matrix order.

    Shards must come from the same bench (preset, seed, matrix); a cell found twice must agree.
    """
    runs = [load_run(d) for d in directories]
    first = runs[0]
    for directory, run in zip(directories[1:], runs[1:]):
        for key in ("preset", "seed", "matrix"):
            if run[key] != first[key]:
                raise ProtodiffError(
                    f"{directory}: a different bench ({key} differs from {directories[0]}); merge shards of one bench"
                )
    records: dict[str, dict[str, Any]] = {}
    for directory in directories:
        for path in sorted((directory / "cells").glob(f"*/{RECORD}")):
            record = load_record(path)
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
