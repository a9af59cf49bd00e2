"""Edits against the truth: how well can *any* edit of the condition change a global attribute?

Reproduces docs/steering.md, "Against the true counterfactual". ``shapes`` renders each test image
again with one global attribute changed and everything else (marks, places, tint) kept
(``ShapesImages.counterfactual``): the image a perfect edit would produce. For each run and each
global attribute, on the evaluation images of ``experiments/steering.py`` (the same ``--calibrate``
offset, ``--images`` images, inversion and judge) that lack the attribute (by their label):

``judge``             the judge on the real image against the judge on its counterfactual: how
                      often the judge itself reads the attribute added, and the other attributes
                      flipped, when nothing but the attribute changed (the floor of the judge);
``round trip``        each image inverted under its own condition and regenerated, against the
                      image itself, for the real images and for their counterfactuals: what the
                      model redraws wrongly with no edit at all, on either background;
``truth``             the counterfactual inverted and regenerated under its own condition, against
                      the real image's unedited regeneration: an edit that knows both the right
                      noise and the right condition (the floor of an edit measured as steering.py
                      measures it);
``true condition``    the real image's inverted x_T regenerated under the condition the encoder
                      reads on the counterfactual, at guidance 1 and ``--guidance``: the best an
                      edit *of the condition* can ask for. Steering's levers choose a vector; this
                      one is the right vector, so what it leaks no choice of vector removes;
``mean true shift``   every image's condition moved by the mean of the true changes (s_cf - s): the
                      best one shift for all images can do (an oracle);
``labelled mean difference``  moved by the mean vector of the test images that have the attribute
                      minus that of those that lack it (by their labels; the images after the
                      evaluation ones): a difference-in-means direction, what a user with labels
                      can compute;
``linear map from true pairs``  moved by the least-squares linear map from a condition to its
                      counterfactual's, fitted on up to ``--pairs`` other test images (after the
                      evaluation ones) that lack the attribute, each with its own counterfactual:
                      a per-image correction of the shift, with pairs no user has (an oracle): how
                      far an edit linear in the condition can go.

Success and leakage are defined as in steering.py (leakage: the mean share of the other attributes
that flip). ``python experiments/counterfactual.py RUN... --classifier JUDGE --out DIR``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

if not __package__:  # run as ``python experiments/counterfactual.py``: steering.py is a sibling module
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.steering import ATTRS_SHORT, Steering
from protodiff.data.shapes import GLOBAL_ATTRIBUTES
from protodiff.provenance import code_version


def flips(after: Tensor, before: Tensor, a: int) -> float:
    """The mean share of the attributes other than ``a`` on which two sets of judge probabilities
    disagree."""
    others = [b for b in range(after.shape[1]) if b != a]
    return ((after[:, others] > 0.5) != (before[:, others] > 0.5)).float().mean().item()


def linear_map(source: Tensor, target: Tensor) -> Callable[[Tensor], Tensor]:
    """The least-squares affine map from ``source`` rows to ``target`` rows (N, K each)."""
    source_mean, target_mean = source.mean(dim=0), target.mean(dim=0)
    weights = torch.linalg.lstsq(source - source_mean, target - target_mean).solution
    return lambda vectors: (vectors - source_mean) @ weights + target_mean


def measure(steering: Steering, attribute: str, guidance: float, pairs: int) -> dict:
    model, judge, sampler = steering.model, steering.judge, steering.sampler
    test = steering.config.data.build().open("test")
    a = steering.names.index(attribute)
    part = steering.evaluation
    vectors, x_T, x0 = steering.vectors[part], steering.x_T[part], steering.x0[part]
    with torch.inference_mode():
        before = judge.predict_proba(model.sample(condition=vectors, x_T=x_T, sampler=sampler))
        lacking = steering.labels[part][:, a] == 0
        index = [i for i, keep in zip(range(part.start, part.stop), lacking.tolist(), strict=True) if keep]
        if not index:
            return {"attribute": attribute, "images": 0, "pairs": 0, "rows": {}, "moved": []}
        vectors, x_T, x0, before = vectors[lacking], x_T[lacking], x0[lacking], before[lacking]
        changed = torch.stack([test.counterfactual(i, {attribute: True})[0] for i in index])
        truth = model.encode(changed).vector.float()
        truth_T = model.invert(changed, condition=truth, sampler=sampler)
        real_p, changed_p = judge.predict_proba(x0), judge.predict_proba(changed)
        outcome = {
            "judge": (changed_p, real_p),
            "round trip (real)": (judge.predict_proba(model.sample(condition=vectors, x_T=x_T, sampler=sampler)), real_p),
            "round trip (counterfactual)": (
                judge.predict_proba(model.sample(condition=truth, x_T=truth_T, sampler=sampler)),
                changed_p,
            ),
        }
        outcome["truth"] = (outcome["round trip (counterfactual)"][0], before)
        for w in (1.0, guidance):
            net = model.edit_net_fn(vectors, truth, len(vectors), w)
            edit = sampler.sample(net, x_T, prediction=model.schedule.config.prediction)
            outcome[f"true condition, guidance {w:g}"] = (judge.predict_proba(edit), before)
        # One shift for every image: the mean of the true ones (an oracle), and the difference of the
        # mean vectors of the other test images with and without the attribute (by their labels).
        reference, labels = steering.vectors[part.stop :], steering.labels[part.stop :, a]
        shifts = {
            "mean true shift": (truth - vectors).mean(dim=0),
            "labelled mean difference": reference[labels == 1].mean(dim=0) - reference[labels == 0].mean(dim=0),
        }
        for name, shift in shifts.items():
            edit = model.sample(condition=vectors + shift, x_T=x_T, sampler=sampler)
            outcome[name] = (judge.predict_proba(edit), before)
        fitted_on = (part.stop + torch.nonzero(labels == 0).flatten())[:pairs].tolist()
        if fitted_on:
            source = steering.vectors[fitted_on]
            target = model.encode(torch.stack([test.counterfactual(i, {attribute: True})[0] for i in fitted_on]))
            mapped = linear_map(source, target.vector.float())(vectors)
            edit = model.sample(condition=mapped, x_T=x_T, sampler=sampler)
            outcome["linear map from true pairs"] = (judge.predict_proba(edit), before)
    rows: dict[str, dict[str, float | None]] = {
        name: {"success": round((after[:, a] > 0.5).float().mean().item(), 3), "leakage": round(flips(after, ref, a), 3)}
        for name, (after, ref) in outcome.items()
    }
    for name in ("round trip (real)", "round trip (counterfactual)"):  # nothing was asked to change
        rows[name]["success"] = None
    distance = (truth - vectors).abs()
    return {
        "attribute": attribute,
        "images": len(index),
        "pairs": len(fitted_on),
        "rows": rows,
        # How much of the condition the change moves: the mean |s_cf - s| per dimension, largest first.
        "moved": sorted(((round(d, 3), j) for j, d in enumerate(distance.mean(dim=0).tolist())), reverse=True)[:8],
    }


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--classifier", required=True, type=Path)
    parser.add_argument("--attributes", default=",".join(GLOBAL_ATTRIBUTES), help="Global attributes, comma-separated.")
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--calibrate", type=int, default=32, help="Skipped, as steering.py calibrates on them.")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--pairs", type=int, default=400, help="Counterfactual pairs the linear map is fitted on.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/counterfactual"), help="Appends to results.jsonl here.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        steering = Steering(run, args.classifier, args.calibrate, args.images, args.seed)
        for attribute in args.attributes.split(","):
            result = {"run": run.name, **measure(steering, attribute, args.guidance, args.pairs), "code": code_version()}
            with open(args.out / "results.jsonl", "a") as handle:
                handle.write(json.dumps(result) + "\n")
            print(f"{run.name} {ATTRS_SHORT[attribute]} ({result['images']} images, {result['pairs']} pairs)")
            for name, row in result["rows"].items():
                success = "   - " if row["success"] is None else f"{row['success']:.2f}"
                print(f"  {name:<32} {success} / {row['leakage']:.2f}", flush=True)


if __name__ == "__main__":
    main()
