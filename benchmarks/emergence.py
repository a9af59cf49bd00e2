"""The cost of ``explain emergence`` against plain sampling of the same images, in the same run.

Emergence samples every explained image under its own vector and under each enhanced dimension
(one batch of (K + 1) N) and re-encodes x0_hat at every step through the sampler's callback (with
a classifier, also judges it). The reference is ``model.sample`` of exactly that batch from the same
x_T with no callback; rounds alternate between the two and the median of each is reported, with
the ratio (the target: at most 1.25).

    python benchmarks/emergence.py RUN --n 4 --steps 20 [--classifier DIR] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from protodiff.checkpoint import load_model
from protodiff.explain.effects import enhanced_batch, enhanced_values
from protodiff.explain.emergence import read_walk
from protodiff.metrics.attribute_classifier import AttributeClassifier


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--classifier", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, config = load_model(args.run, device=args.device)
    model.eval()
    data = config.data.build().open("test")
    images = torch.stack([data[i][0] for i in range(args.n)]).to(model.device)
    sampler = model.sampler("ddim", steps=args.steps)
    vectors = model.encode(images).vector.detach()
    edited = enhanced_batch(vectors, enhanced_values(vectors, 1.0))
    x_T = model.noise(args.n, torch.Generator().manual_seed(0))
    classifier = AttributeClassifier.load(args.classifier, device=model.device) if args.classifier else None
    candidates = {
        "plain sampling": lambda: model.sample(condition=edited, x_T=x_T.repeat(len(edited) // args.n, 1, 1, 1), sampler=sampler),
        "emergence (re-encode)": lambda: read_walk(model, edited, x_T, sampler),
    }
    if classifier is not None:
        candidates["emergence (re-encode + classifier)"] = lambda: read_walk(model, edited, x_T, sampler, classifier)
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(args.rounds):
        for name, work in candidates.items():
            start = time.perf_counter()
            work()
            seconds[name].append(time.perf_counter() - start)
    reference = statistics.median(seconds["plain sampling"])
    report = {
        "images": len(edited),
        "steps": args.steps,
        "threads": torch.get_num_threads(),
        "results": {
            name: {
                "seconds_median": round(statistics.median(s), 3),
                "rounds": [round(x, 3) for x in s],
                "ratio_to_plain": round(statistics.median(s) / reference, 3),
            }
            for name, s in seconds.items()
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
