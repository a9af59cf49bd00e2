"""DiffAE's edits against prototype edits, on the same images, judged alike.

Each run's first ``--images`` test images are inverted under their own condition and regenerated
unedited and under each edit, from the same x_T (so inversion error cancels); an attribute
classifier judges every regeneration. Two kinds of edit:

* ``direction``: DiffAE's method (``protodiff explain attribute-edit``): a linear classifier per
  attribute on the run's codes of the train split, the code moved ``amount * sqrt(D)`` standard
  deviations along the attribute's normal. Any run, any conditioner.
  With ``--direction mean-difference`` the code is moved instead by ``amount`` times the
  attribute's mean difference (the mean train code with it minus that of those without); with
  ``--direction conditional`` by that difference among the train images with the same other
  attributes as the image (the judge calls the image's).
* ``dimension``: one dimension set to its plausible maximum (``protodiff explain effects``), the
  dimension chosen per attribute as the one whose enhancement turns the attribute on most *on
  other images* (test images ``images..2*images``), so the choice is not scored on the images it
  was made on. Only for runs of at most ``--max-dimensions`` dimensions (a 512-d DiffAE code
  would take 512 regenerations per image to choose from, and one dimension of it was never meant
  to carry an attribute).

Per edit and attribute a: **success**, the fraction of images judged without a (unedited
regeneration) that have it after the edit; **leakage**, the mean over the other attributes of the
fraction of images whose judged state flips.

Reproduces docs/baselines.md, "Edits: DiffAE's method against one prototype" (the table of
success / leakage per attribute, seed 0, on the aligned runs of its first commands). Prints the
table and writes every row to ``OUT/results.json``::

    python experiments/edit_methods.py runs/patronus runs/diffae runs/infodiff --classifier J \
        --images 64 --amounts 0.3,1.0 [--out runs/edit-methods]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch

import protodiff
from protodiff.config import ComponentSpec
from protodiff.explain.edit import EditSettings
from protodiff.explain.effects import effect_matrix
from protodiff.io import write_json
from protodiff.metrics.attribute_classifier import AttributeClassifier
from protodiff.model import EDIT_GUIDANCE
from protodiff.provenance import code_version

#: Each direction's row name in the table.
EDIT_NAMES = {"normal": "direction", "mean-difference": "mean-diff", "conditional": "cond-diff"}


def scores(before: torch.Tensor, after: torch.Tensor, target: int) -> dict[str, float]:
    """Success on ``target`` and leakage to every other attribute, from judged probabilities (N, A)."""
    had, has = before > 0.5, after > 0.5
    lacking = ~had[:, target]
    success = float(has[lacking, target].float().mean()) if lacking.any() else float("nan")
    others = [a for a in range(before.shape[1]) if a != target]
    flips = (had[:, others] != has[:, others]).float()
    return {
        "success": round(success, 4),
        "leakage": round(float(flips.mean()), 4),
        # over the images that lacked the attribute only, as experiments/steering.py counts it
        "leakage_lacking": round(float(flips[lacking].mean()), 4) if lacking.any() else float("nan"),
        "lacking": int(lacking.sum()),
    }


def direction_edits(model, config, batch: torch.Tensor, judge: AttributeClassifier, args, amount: float) -> tuple[Any, Any]:
    """DiffAE's edit of every attribute by ``amount`` on ``batch`` (``protodiff explain attribute-edit``):
    the judged probabilities of the unedited regenerations (N, A) and the explanation."""
    options: dict[str, Any] = {
        "amount": amount,
        "direction": args.direction,
        "sampler": {"name": "ddim", "steps": args.steps},
        "guidance": args.guidance,
    }
    if args.fit_images is not None:
        options["fit_images"] = args.fit_images
    if args.fit_steps is not None:
        options["steps"] = args.fit_steps
    edit = protodiff.explain(
        model, "attribute-edit", images=batch, options=options, classifier=judge, seed=args.seed, experiment=config
    )
    return judge.predict_proba(edit.tensors["reconstructed"]), edit


def measure(run: str, judge: AttributeClassifier, args) -> list[dict[str, Any]]:
    """Every row (edit x attribute) of one run."""
    model, config = protodiff.load_model(run, device="cpu")
    model.eval()
    test = config.data.build().open("test")
    names = list(judge.attribute_names)
    batch = torch.stack([test[i][0] for i in range(args.images)])
    results: list[dict[str, Any]] = []
    before = None
    for amount in map(float, args.amounts.split(",")):
        before, edit = direction_edits(model, config, batch, judge, args, amount)
        for a, name in enumerate(names):
            after = before + edit.tensors["change"][a]
            results.append(
                {
                    "run": run,
                    "edit": f"{EDIT_NAMES[args.direction]} {amount:g}",
                    "attribute": name,
                    **scores(before, after, a),
                    "direction_accuracy": edit.meta["direction_accuracy"][name],
                }
            )
    if before is not None and model.conditioner.dim <= args.max_dimensions:
        sampler = ComponentSpec("sampler", "ddim", raw={"steps": args.steps}).build(schedule=model.schedule)
        choose = torch.stack([test[i][0] for i in range(args.images, 2 * args.images)])
        settings = EditSettings(guidance=args.guidance)
        chosen = effect_matrix(model, choose, judge, sampler=sampler, settings=settings).effect.argmax(dim=0)  # (A,)
        judged = effect_matrix(model, batch, judge, sampler=sampler, settings=settings)
        for a, name in enumerate(names):
            j = int(chosen[a])
            after = before + judged.change[j]
            results.append(
                {
                    "run": run,
                    "edit": "dimension",
                    "attribute": name,
                    "dimension": judged.dimensions[j],
                    **scores(before, after, a),
                }
            )
    return results


def print_table(runs: list[str], names: list[str], results: list[dict[str, Any]], leakage: str = "leakage") -> None:
    print(f"{'run':<28} {'edit':<14} " + " ".join(f"{n[:12]:>12}" for n in names) + "   mean")
    for run in runs:
        for kind in dict.fromkeys(r["edit"] for r in results if r["run"] == run):
            rows = [r for r in results if r["run"] == run and r["edit"] == kind]
            cells = [f"{r['success']:.2f}/{r[leakage]:.2f}" for r in rows]
            mean_s = sum(r["success"] for r in rows) / len(rows)
            mean_l = sum(r[leakage] for r in rows) / len(rows)
            print(f"{run[-28:]:<28} {kind:<14} " + " ".join(f"{c:>12}" for c in cells) + f"   {mean_s:.2f}/{mean_l:.2f}")
    print(
        "(success/leakage: success = share of images lacking the attribute that gain it; "
        f"leakage = mean share of other attributes flipped, over {'all images' if leakage == 'leakage' else 'those images'})"
    )


def arguments() -> argparse.ArgumentParser:
    """The command line (the docs' quoted commands are checked against it)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--classifier", required=True, help="A saved attribute classifier for the runs' data.")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--amounts", default="0.3,1.0", help="Edit amounts (0.3 is DiffAE's example for its normal).")
    parser.add_argument(
        "--direction",
        choices=list(EDIT_NAMES),
        default="normal",
        help="DiffAE's classifier normal, each attribute's mean difference, or that difference given the image's "
        "other attributes (attribute-edit's direction).",
    )
    parser.add_argument(
        "--leakage-over",
        choices=["all", "lacking"],
        default="all",
        help="The table's leakage: over all images, or over those lacking the attribute (steering.py's); both are saved.",
    )
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps to invert and regenerate.")
    parser.add_argument("--max-dimensions", type=int, default=64)
    parser.add_argument(
        "--guidance",
        type=float,
        default=EDIT_GUIDANCE,
        help="How much each edit's difference is amplified (1: docs/baselines.md).",
    )
    parser.add_argument(
        "--fit-images", type=int, default=None, help="Train codes the directions are fitted on (default: attribute-edit's)."
    )
    parser.add_argument(
        "--fit-steps", type=int, default=None, help="The directions' Adam steps (default: attribute-edit's, DiffAE's)."
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/edit-methods"), help="Writes results.json here.")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = arguments().parse_args(argv)

    torch.manual_seed(args.seed)
    judge = AttributeClassifier.load(args.classifier)
    results = [row for run in args.runs for row in measure(run, judge, args)]
    print_table(args.runs, list(judge.attribute_names), results, "leakage" if args.leakage_over == "all" else "leakage_lacking")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(
        args.out / "results.json",
        {"args": {**vars(args), "out": str(args.out)}, "results": results, "code": code_version()},
    )


if __name__ == "__main__":
    main()
