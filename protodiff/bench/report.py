"""REPORT.md and a self-contained report.html (every image embedded as base64, opens from disk).

Both are built from the gathered cell records only, so a report of merged shards is the report
of the unsharded run.
"""

from __future__ import annotations

import base64
import json
import os
from html import escape
from pathlib import Path
from typing import Any

from protodiff.bench import leads
from protodiff.bench import tables as tab
from protodiff.bench.heatmap import MAPS, plot_heatmap
from protodiff.io import write_text

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}
th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%;image-rendering:pixelated}
.cell{border-top:1px solid #ddd;margin-top:1.5em}.meta{font-size:12px;color:#555}pre{background:#f6f6f6;padding:.6em;overflow:auto}"""


def _image_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'


def _figures(record: dict[str, Any]) -> list[tuple[str, Path]]:
    """(caption, path) of a cell's grids and of each explainer's figures."""
    directory = Path(record["dir"])
    shown = [(name, directory / file) for name, file in record["figures"].items()]
    for explainer, outcome in record["explainers"].items():
        for figure in outcome.get("figures", []):
            shown.append((f"{explainer}: {figure}", directory / outcome["dir"] / figure))
    return [(caption, path) for caption, path in shown if path.is_file()]


def _cell_facts(record: dict[str, Any]) -> str:
    ips = f"{record['images_per_s']:.1f} img/s" if record.get("images_per_s") else "img/s –"
    cuda = f", CUDA peak {record['peak_cuda_mib']:.0f} MiB" if record.get("peak_cuda_mib") else ""
    return (
        f"{record['steps']} steps ({record['trained_now']} trained in this run), train {record['train_s']:.0f} s, "
        f"eval {record['eval_s']:.0f} s, cell {record['wall_s']:.0f} s, {ips}, RSS peak {record['peak_rss_mib']:.0f} MiB{cuda}"
    )


def _judge(record: dict[str, Any]) -> str | None:
    judge = record.get("judge")
    if not judge:
        return None
    accuracy = judge["test_accuracy"]
    lowest = min(accuracy, key=accuracy.get)
    return (
        f"judge: attribute classifier, {judge['steps']} steps on {judge['split']}; held-out accuracy "
        f"mean {sum(accuracy.values()) / len(accuracy):.3f}, lowest {lowest} {accuracy[lowest]:.3f}"
    )


def _prior(record: dict[str, Any]) -> str | None:
    prior = record.get("prior")
    if not prior:
        return None
    if "skipped" in prior:
        return f"prior: not fitted ({prior['skipped']})"
    if prior.get("reused"):
        return "prior: fitted by an earlier run of this cell"
    return (
        f"prior: {prior['name']} fitted on {prior['vectors']} train conditions in {prior['fit_s']:.0f} s "
        f"(final loss {prior['final_loss']:.4f}); new samples from it below"
    )


def _shortcuts(record: dict[str, Any], top: int = 5) -> tab.Table | None:
    """The first ``top`` couplings of the cell's shortcuts.json, if the explainer ran."""
    outcome = record["explainers"].get("shortcuts", {})
    if "dir" not in outcome:
        return None
    path = Path(record["dir"]) / outcome["dir"] / "shortcuts.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    rows = [
        [
            c["prototype"],
            " / ".join(c["attributes"]),
            " / ".join(f"{e:+.2f}" for e in c["effects"]),
            "–" if c["score"] is None else f"{c['score']:.3f}",
            "{agreeing} of {dimensions} ({attribute})".format(**c["replication"]),
            "–" if c["train_correlation"] is None else f"{c['train_correlation']:+.2f}",
            "flagged" if c["flagged"] else "",
        ]
        for c in report["couplings"][:top]
    ]
    header = ["dimension", "attributes", "effects", "score", "replicated by", "train r", "flagged"]
    return tab.Table(f"shortcuts ({len(report['couplings'])} couplings listed)", header, rows)


def _skipped(record: dict[str, Any]) -> list[str]:
    return [f"{name}: skipped ({o['skipped']})" for name, o in record["explainers"].items() if "skipped" in o]


def _cell_left_out(record: dict[str, Any]) -> list[str]:
    """What preflight planned this cell without, because its data (or method) cannot support it."""
    return [f"{name}: left out ({why})" for name, why in (record.get("left_out") or {}).items()]


def _left_out(run: dict[str, Any]) -> list[str]:
    """The explainers the preset leaves out, each with its one sentence why."""
    return [f"{name}: not run by this preset ({why})" for name, why in (run.get("left_out") or {}).items()]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _timing(run: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """What this bench took, measured by the run itself: its wall time and each cell's."""
    cells = ", ".join(f"{r['cell']} {_minutes(r['wall_s'])} (training {_minutes(r['train_s'])})" for r in records)
    wall = f"{_minutes(run['wall_s'])} wall time" if run.get("wall_s") is not None else "wall time not recorded"
    reused = [r["cell"] for r in records if not r.get("trained_now")]
    note = f"; reused from an earlier run: {', '.join(reused)}" if reused else ""
    return f"this run: {wall}, started {run.get('started', '?')}; cells: {cells}{note}"


def _environment(run: dict[str, Any], records: list[dict[str, Any]]) -> list[str]:
    env = run["environment"]
    return [
        f"command: `{run['command']}`",
        f"preset: {run['preset']}, seed {run['seed']}, shards merged: {run['shards']}",
        _timing(run, records),
        "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"machine: {env['machine']}",
    ]


def _who_leads(records: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(markdown, html) of the "who leads" section of one dataset: per measure, its table and
    its plain summary."""
    md: list[str] = []
    body: list[str] = []
    for label, title in leads.MEASURES.items():
        standing = leads.standings(records, label)
        if not standing:
            continue
        header, rows = leads.table(standing)
        table = tab.Table(title, header, rows)
        sentences = leads.summary(standing)
        md += [f"**{title}** (± one standard error): " + "; ".join(sentences) + ".", "", tab.markdown(table), ""]
        body += [f"<p><b>{escape(title)}</b> (± one standard error): {escape('; '.join(sentences))}.</p>", tab.html(table)]
    if md:
        caveat = (
            "A lead is called where it exceeds twice the standard error of the difference; the errors are "
            "over images, from one training seed per method (the spread over seeds is not measured here)."
        )
        md = ["### Who leads", "", caveat, "", *md]
        body = ["<h3>Who leads</h3>", f"<p class=meta>{escape(caveat)}</p>", *body]
    return md, body


def write_report(directory: Path, run: dict[str, Any], records: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write REPORT.md (figures beside it in figures/) and report.html into ``directory``."""
    source, _ = tab.published()
    figures_dir = directory / "figures"
    heatmaps: dict[str, list[tuple[str, Path]]] = {}
    for dataset in dict.fromkeys(r["dataset"] for r in records):
        for label, caption in MAPS.items():
            slug = label.split()[0]
            path = plot_heatmap(records, dataset, figures_dir / f"auroc-{slug}-{dataset}.png", label)
            if path is not None:
                heatmaps.setdefault(dataset, []).append((caption, path))
    missing = [name for name in run["matrix"] if name not in {r["cell"] for r in records}]
    environment = _environment(run, records)
    md = [f"# protodiff bench: {run['preset']}", "", *(f"- {line}" for line in environment), ""]
    body = [
        f"<h1>protodiff bench: {escape(run['preset'])}</h1>",
        "<ul class=meta>",
        *(f"<li>{escape(line)}</li>" for line in environment),
        "</ul>",
    ]
    if run.get("notes"):
        md += [run["notes"].strip(), ""]
        body.append(f"<p class=meta>{escape(run['notes'].strip())}</p>")
    for line in _left_out(run):
        md += [f"- {line}"]
        body.append(f"<p class=meta>{escape(line)}</p>")
    if missing:
        md += [f"**Cells not run yet:** {', '.join(missing)}", ""]
        body.append(f"<p><b>Cells not run yet:</b> {escape(', '.join(missing))}</p>")
    md += [f"Published numbers: {source}; ours are mean ± std over folds.", ""]
    body.append(f"<p class=meta>Published numbers: {escape(source)}; ours are mean ± std over folds.</p>")
    for table in tab.tables(records):
        md += [f"## {table.dataset}", "", tab.markdown(table), ""]
        body += [f"<h2>{escape(table.dataset)}</h2>", tab.html(table)]
        for caption, path in heatmaps.get(table.dataset, []):
            md += [f"![{caption}]({path.relative_to(directory)})", ""]
            body.append(_image_tag(path, caption))
        for where in (t for t in tab.localisation_tables(records) if t.dataset == table.dataset):
            caption = (
                "Localisation against the dataset's regions, per attribute: pointing game / mass inside ÷ area / "
                "pixel AUROC (chance: the random map; a Gaussian at the centre is the free prior)"
            )
            md += [f"{caption}:", "", tab.markdown(where), ""]
            body += [f"<p class=meta>{escape(caption)}</p>", tab.html(where)]
        lead_md, lead_html = _who_leads([r for r in records if r["dataset"] == table.dataset])
        md += lead_md
        body += lead_html
    md += ["## Cells", ""]
    body.append("<h2>Cells</h2>")
    for record in records:
        md += [f"### {record['cell']}", "", _cell_facts(record), ""]
        body += [f"<div class=cell><h3>{escape(record['cell'])}</h3><p class=meta>{escape(_cell_facts(record))}</p>"]
        for line in filter(None, [_judge(record), _prior(record), *_cell_left_out(record), *_skipped(record)]):
            md.append(f"- {line}")
            body.append(f"<p class=meta>{escape(line)}</p>")
        couplings = _shortcuts(record)
        if couplings is not None:
            md += ["", f"{couplings.dataset}:", "", tab.markdown(couplings) if couplings.rows else "none", ""]
            body += [f"<h4>{escape(couplings.dataset)}</h4>", tab.html(couplings) if couplings.rows else "<p>none</p>"]
        for caption, path in _figures(record):
            md += ["", f"{caption}:", "", f"![{caption}]({os.path.relpath(path, directory)})"]
            body += [f"<h4>{escape(caption)}</h4>", _image_tag(path, caption)]
        md.append("")
        body.append("</div>")
    md_path = write_text(directory / "REPORT.md", "\n".join(md) + "\n")
    html = (
        f"<!doctype html><html><head><meta charset=utf-8><title>protodiff bench {escape(run['preset'])}</title>"
        f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>"
    )
    return md_path, write_text(directory / "report.html", html)
