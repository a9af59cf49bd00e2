"""The explorer's edit latency: how long one slider move takes to regenerate a 32 px image.

One test image is picked (encoded and inverted once, as the page does), then ``--edits`` edits are
made, each moving a different dimension to a value drawn within its slider's range, and timed
twice over: the library's own ``Explorer.edit`` (the regeneration from the cached inversion and
the re-encoding of every step: the time the page shows as "on the server") and, when the
``explore`` extra is installed, the app's ``POST /api/edit`` in-process (adding the JSON and the
PNGs of the timeline; the page's "round trip" adds only the browser). The median and the worst
of each are reported, with the thread count: the target is a median of at most 1 s on 2 cores.

    python benchmarks/explore.py RUN [--edits 20] [--image 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import time

import torch


def summary(seconds: list[float]) -> dict:
    return {
        "median_s": round(statistics.median(seconds), 3),
        "worst_s": round(max(seconds), 3),
        "edits": [round(s, 3) for s in seconds],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory or a checkpoint")
    parser.add_argument("--edits", type=int, default=20, help="edits to time (default 20)")
    parser.add_argument("--image", type=int, default=0, help="the test image edited (default 0)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from protodiff.explore.session import Explorer

    explorer = Explorer.open(args.run, device=args.device)
    started = time.perf_counter()
    picture = explorer.pick(args.image)
    pick_seconds = time.perf_counter() - started
    low, high = explorer.slider_range()
    generator = torch.Generator().manual_seed(0)
    k = len(explorer.names)
    vectors = []
    for i in range(args.edits):
        vector = picture.vector.clone()
        j = i % k
        vector[j] = low[j] + (high[j] - low[j]) * torch.rand((), generator=generator)
        vectors.append(vector)

    library = [explorer.edit(picture.key, vector).seconds for vector in vectors]
    report = {
        "run": args.run,
        "image_size": explorer.model.image_size,
        "dimensions": k,
        "sampler": f"{explorer.settings.sampler.name}, {explorer.sampler.config.steps} steps",
        "threads": torch.get_num_threads(),
        "pick_s": round(pick_seconds, 3),
        "library": summary(library),
    }
    if importlib.util.find_spec("starlette") and importlib.util.find_spec("httpx2"):
        from starlette.testclient import TestClient

        from protodiff.explore.app import create_app

        client = TestClient(create_app(explorer))
        http = []
        for vector in vectors:
            started = time.perf_counter()
            response = client.post("/api/edit", json={"key": picture.key, "vector": vector.tolist()})
            http.append(time.perf_counter() - started)
            response.raise_for_status()
        report["http"] = summary(http)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
