"""Who leads where: per attribute, which method's best single dimension separates it best and whose
regenerations keep it most often, called only when the lead is larger than the noise of both.

A lead is called when the leader's value minus the runner-up's is more than twice the standard
error of that difference (``sqrt(se_1^2 + se_2^2)``); otherwise the attribute is a tie between
every method within that margin of the leader. The standard errors come with the numbers: an
AUROC's from its positives and negatives (Hanley & McNeil), an agreement's from its images
(binomial). One run per method says nothing about the spread over training seeds, and the report
says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from protodiff.bench.results import separation

#: The per-attribute measures compared, by metric label: (what the report calls it, how to read
#: a value and its standard error off one attribute's entry).
MEASURES = {
    "dimension AUROC": "best single dimension (AUROC)",
    "reconstruction agreement": "regeneration agreement",
}


@dataclass
class Standing:
    """One attribute under one measure: each method's value and standard error, and the call."""

    attribute: str
    values: dict[str, tuple[float, float]]  # method -> (value, standard error)
    leaders: list[str]  # one method: a lead; several: a tie within the noise

    @property
    def lead(self) -> bool:
        return len(self.leaders) == 1 and len(self.values) > 1


def _entry(label: str, result: dict[str, Any], attribute: str) -> tuple[float, float] | None:
    entry = (result.get("per_attribute") or {}).get(attribute)
    if not entry:
        return None
    if label == "dimension AUROC":
        if entry.get("auroc") is None:
            return None
        return separation(entry["auroc"]), entry.get("stderr", math.nan)
    value, n = entry["agreement"], result.get("num_images") or 0
    return value, math.sqrt(value * (1 - value) / n) if n else math.nan


def standings(records: list[dict[str, Any]], label: str) -> list[Standing]:
    """Every attribute of one dataset's cells under the measure ``label``."""
    cells = [r for r in records if label in r["results"]]
    attributes = list(dict.fromkeys(a for r in cells for a in (r["results"][label].get("per_attribute") or {})))
    out = []
    for attribute in attributes:
        values = {r["method"]: v for r in cells if (v := _entry(label, r["results"][label], attribute)) is not None}
        if not values:
            continue
        best_method = max(values, key=lambda m: values[m][0])
        best, best_se = values[best_method]
        leaders = [m for m, (v, se) in values.items() if m == best_method or not best - v > 2 * math.sqrt(best_se**2 + se**2)]
        out.append(Standing(attribute, values, sorted(leaders, key=lambda m: -values[m][0])))
    return out


def summary(standings_: list[Standing]) -> list[str]:
    """Plain sentences: who leads on which attributes, and where it is a tie."""
    leads: dict[str, list[str]] = {}
    ties = []
    for s in standings_:
        if s.lead:
            leads.setdefault(s.leaders[0], []).append(s.attribute)
        else:
            ties.append(s.attribute)
    lines = [f"{method} leads on {', '.join(attributes)}" for method, attributes in leads.items()]
    if ties:
        lines.append(f"within the noise of each other on {', '.join(ties)}")
    return lines


def table(standings_: list[Standing]) -> tuple[list[str], list[list[str]]]:
    """(header, rows): attribute, each method's value ± standard error, and the call."""
    methods = list(dict.fromkeys(m for s in standings_ for m in s.values))
    rows = []
    for s in standings_:
        shown = [f"{s.values[m][0]:.3f} ± {s.values[m][1]:.3f}" if m in s.values else "–" for m in methods]
        rows.append([s.attribute, *shown, s.leaders[0] if s.lead else "tie: " + ", ".join(s.leaders)])
    return ["attribute", *methods, "leads"], rows
