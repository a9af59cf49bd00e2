"""Which attributes does each stage of denoising decide? Early vs late exponential sampling, judged.

"Visual analysis of diffusion" claims semantic content is decided early in denoising and details
late, and shows it by crowding the sampler's steps into one stage (the ``exponential`` sampler,
plugin dfx). Here the claim is measured on a conditional run: the first ``--images`` test images
are regenerated from their own condition, from the same fresh noise, by DDIM with uniform steps
and by the ``early`` and ``late`` exponential schedules (the same number of steps), and an
attribute classifier (trained on the train split) judges every attribute of every regeneration.
Per attribute: agreement with the real image under each schedule, and how often ``early`` and
``late`` disagree with each other. A stage that a schedule starves of steps shows as the
attributes it decides going wrong.

    python experiments/exponential_stages.py runs/ps --classifier runs/judge --images 200
"""

from __future__ import annotations

import argparse

import torch

from protodiff import load_model
from protodiff.metrics.attribute_classifier import AttributeClassifier

SCHEDULES = {"uniform": ("ddim", {}), "early": ("exponential", {"mode": "early"}), "late": ("exponential", {"mode": "late"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--classifier", required=True, help="A saved attribute classifier for the run's data.")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    model, config = load_model(args.run, device="cpu")
    model.eval()
    judge = AttributeClassifier.load(args.classifier)
    test = config.data.build().open("test")
    if list(judge.attribute_names) != list(test.attribute_names):
        raise SystemExit(f"the classifier judges {judge.attribute_names}, the run's data has {test.attribute_names}")
    count = min(args.images, len(test))
    real = torch.stack([test[i][0] for i in range(count)])
    vectors = torch.cat([model.encode(chunk).vector for chunk in real.split(args.batch_size)])
    noise = model.noise(count, torch.Generator().manual_seed(args.seed))
    truth = judge.predict_proba(real) > 0.5
    calls = {}
    for label, (name, options) in SCHEDULES.items():
        sampler = model.sampler(name, steps=args.steps, **options)
        images = torch.cat([model.sample(condition=v, x_T=x, sampler=sampler)
                            for v, x in zip(vectors.split(args.batch_size), noise.split(args.batch_size))])
        calls[label] = judge.predict_proba(images) > 0.5

    print(f"{args.run}: {count} test images regenerated from their condition, {args.steps} steps, seed {args.seed}")
    print("| attribute | agreement: uniform | early | late | early vs late differ |")
    print("|---|---|---|---|---|")
    for i, name in enumerate(judge.attribute_names):
        agree = {label: (c[:, i] == truth[:, i]).float().mean().item() for label, c in calls.items()}
        differ = (calls["early"][:, i] != calls["late"][:, i]).float().mean().item()
        print(f"| {name} | {agree['uniform']:.3f} | {agree['early']:.3f} | {agree['late']:.3f} | {differ:.3f} |")


if __name__ == "__main__":
    main()
