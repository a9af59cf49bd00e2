"""Table-1/2-style tables: per dataset, one row per method, each metric as mean ± std over folds
with the published number beside it where the paper has one."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protodiff._registry.manager import registries
from protodiff.bench.results import scalar
from protodiff.config import read_yaml


def published() -> tuple[str, dict[str, Any]]:
    """(sources, dataset -> method -> metric label -> number) of the published numbers every
    installed plugin registered (``registry.published.add(name, path)``); the sources of all,
    joined with semicolons."""
    sources: list[str] = []
    numbers: dict[str, dict[str, Any]] = {}
    for entry in registries().published.entries():
        data = read_yaml(Path(entry.target))
        sources.append(data["source"])
        for dataset, methods in data["numbers"].items():
            for method, labels in methods.items():
                numbers.setdefault(dataset, {}).setdefault(method, {}).update(labels)
    return "; ".join(dict.fromkeys(sources)), numbers


@dataclass
class Table:
    dataset: str
    header: list[str]
    rows: list[list[str]]


def _format(value: float | None, std: float | None) -> str:
    if value is None:
        return "–"
    text = f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return text + (f" ± {std:.3f}" if std is not None else "")


def tables(records: list[dict[str, Any]]) -> list[Table]:
    """One table per dataset, columns in the order the metrics were computed."""
    _, numbers = published()
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        cells = [r for r in records if r["dataset"] == dataset]
        labels = list(dict.fromkeys(label for r in cells for label in r["results"]))
        paper = numbers.get(dataset, {})
        shown = [label for label in labels if any(label in paper.get(r["method"], {}) for r in cells)]
        header = ["method", "steps", *labels, *(f"{label} (published)" for label in shown)]
        rows = []
        for r in cells:
            ours = [_format(*scalar(r["results"][label])) if label in r["results"] else "–" for label in labels]
            theirs = [str(paper.get(r["method"], {}).get(label, "–")) for label in shown]
            rows.append([r["method"], str(r["steps"]), *ours, *theirs])
        out.append(Table(dataset, header, rows))
    return out


def localisation_tables(records: list[dict[str, Any]]) -> list[Table]:
    """Per dataset with ``localisation`` results: one row per method and map source, one column per
    attribute with a region, each cell "pointing / mass÷area / pixel AUROC" over that attribute's
    images (the metric's own means; the main table shows the mean pointing over attributes)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        rows, attributes = [], []
        for r in (r for r in records if r["dataset"] == dataset):
            for result in r["results"].values():
                if not str(result.get("metric", "")).startswith("localisation"):
                    continue
                per = result.get("per_attribute") or {}
                attributes += [a for a in per if a not in attributes]
                rows.append((r["method"], result.get("map") or "?", per, result.get("num_images")))
        if not rows:
            continue
        header = ["method", "map", "images", *attributes]
        cells = [
            [method, source, str(images), *(_localised(per.get(a)) for a in attributes)] for method, source, per, images in rows
        ]
        out.append(Table(dataset, header, cells))
    return out


def _localised(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "–"
    return f"{entry['pointing']:.2f} / {entry['mass_over_area']:.2f} / {entry['auroc']:.2f}"


def markdown(table: Table) -> str:
    lines = ["| " + " | ".join(table.header) + " |", "|" + "---|" * len(table.header)]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def html(table: Table) -> str:
    from html import escape

    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
