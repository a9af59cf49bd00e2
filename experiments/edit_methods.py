"""DiffAE's edits against prototype edits, on the same images, judged alike.

Each run's first ``--images`` test images are inverted under their own condition and regenerated
unedited and under each edit, from the same x_T (so inversion error cancels); an attribute
classifier judges every regeneration. Two kinds of edit:

* ``direction``: DiffAE's method (``protodiff explain attribute-edit``): a linear classifier per
  attribute on the run's codes of the train split, the code moved ``amount * sqrt(D)`` standard
  deviations along the attribute's normal. Any run, any conditioner.
* ``dimension``: one dimension set to its plausible maximum (``protodiff explain effects``), the
  dimension chosen per attribute as the one whose enhancement turns the attribute on most *on
  other images* (test images ``images..2*images``), so the choice is not scored on the images it
  was made on. Only for runs of at most ``--max-dimensions`` dimensions (a 512-d DiffAE code
  would take 512 regenerations per image to choose from, and one dimension of it was never meant
  to carry an attribute).

Per edit and attribute a: **success**, the fraction of images judged without a (unedited
regeneration) that have it after the edit; **leakage**, the mean over the other attributes of the
fraction of images whose judged state flips. ::

    python experiments/edit_methods.py runs/ps runs/ds runs/is --classifier runs/judge --images 64
"""

from __future__ import annotations

import argparse
import json

import torch

from protodiff import load_model
from protodiff.config import ComponentSpec
from protodiff.explain.effects import effect_matrix
from protodiff.metrics.attribute_classifier import AttributeClassifier
from protodiff_diffae.editing import AttributeEditExplainer


def scores(before: torch.Tensor, after: torch.Tensor, target: int) -> dict[str, float]:
    """Success on ``target`` and leakage to every other attribute, from judged probabilities (N, A)."""
    had, has = before > 0.5, after > 0.5
    lacking = ~had[:, target]
    success = float(has[lacking, target].float().mean()) if lacking.any() else float("nan")
    others = [a for a in range(before.shape[1]) if a != target]
    leakage = float((had[:, others] != has[:, others]).float().mean())
    return {"success": round(success, 4), "leakage": round(leakage, 4), "lacking": int(lacking.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--classifier", required=True, help="A saved attribute classifier for the runs' data.")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--amounts", default="0.3,1.0", help="DiffAE edit amounts (0.3 is DiffAE's example).")
    parser.add_argument("--steps", type=int, default=20, help="DDIM steps to invert and regenerate.")
    parser.add_argument("--max-dimensions", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="Write the results as JSON here.")
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    judge = AttributeClassifier.load(args.classifier)
    sampler = ComponentSpec("sampler", "ddim", raw={"steps": args.steps})
    results = []
    for run in args.runs:
        model, config = load_model(run, device="cpu")
        model.eval()
        source = config.data.build()
        test, train = source.open("test"), source.open("train")
        names = list(judge.attribute_names)
        batch = torch.stack([test[i][0] for i in range(args.images)])
        for amount in map(float, args.amounts.split(",")):
            explainer = AttributeEditExplainer(AttributeEditExplainer.Config(amount=amount, sampler=sampler))
            edit = explainer.explain(model, batch, train=train, data=test, classifier=judge,
                                     generator=torch.Generator().manual_seed(args.seed))
            before = judge.predict_proba(edit.tensors["reconstructed"])
            for a, name in enumerate(names):
                after = before + edit.tensors["change"][a]
                results.append({"run": run, "edit": f"direction {amount:g}", "attribute": name,
                                **scores(before, after, a), "direction_accuracy": edit.meta["direction_accuracy"][name]})
        if model.conditioner.dim <= args.max_dimensions:
            built = sampler.build(schedule=model.schedule)
            choose = torch.stack([test[i][0] for i in range(args.images, 2 * args.images)])
            chosen = effect_matrix(model, choose, judge, sampler=built).effect.argmax(dim=0)  # (A,) per attribute
            judged = effect_matrix(model, batch, judge, sampler=built)
            for a, name in enumerate(names):
                j = int(chosen[a])
                after = before + judged.change[j]
                results.append({"run": run, "edit": "dimension", "attribute": name, "dimension": judged.dimensions[j],
                                **scores(before, after, a)})
    print(f"{'run':<28} {'edit':<14} " + " ".join(f"{n[:12]:>12}" for n in names) + "   mean")
    for run in args.runs:
        for kind in dict.fromkeys(r["edit"] for r in results if r["run"] == run):
            rows = [r for r in results if r["run"] == run and r["edit"] == kind]
            cells = [f"{r['success']:.2f}/{r['leakage']:.2f}" for r in rows]
            mean_s = sum(r["success"] for r in rows) / len(rows)
            mean_l = sum(r["leakage"] for r in rows) / len(rows)
            print(f"{run[-28:]:<28} {kind:<14} " + " ".join(f"{c:>12}" for c in cells) + f"   {mean_s:.2f}/{mean_l:.2f}")
    print("(success/leakage: success = share of images lacking the attribute that gain it; "
          "leakage = mean share of other attributes flipped)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
