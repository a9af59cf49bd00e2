#!/usr/bin/env bash
# Set up protodiff in .venv and run the main job on the bundled default: train Patronus on the
# generated `shapes` dataset (a few minutes on 2 CPU cores), fit its latent prior, and write
#   runs/quickstart/summary.png           open this first: test images next to their regeneration
#                                         from their prototype activations s, new images from the
#                                         prior (s ~ prior, x ~ p(x | s)), and the training loss
#   runs/quickstart/reconstructions.png   16 test images, each next to its regeneration from s
#   runs/quickstart/samples.png           64 new images from the prior
#   runs/quickstart/loss.png              the training loss
# STEPS=... changes the length of the run (the full patronus-shapes preset is 2000 steps).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet -e '.[dev]'
run=runs/quickstart
rm -rf "$run"
.venv/bin/protodiff train patronus-shapes --out "$run" --set "train.steps=${STEPS:-1000}" --seed 0
.venv/bin/protodiff fit-prior "$run" --seed 0
.venv/bin/protodiff sample "$run" --condition-on test --n 16 --out "$run/reconstructions.png" --seed 0
.venv/bin/protodiff sample "$run" --n 64 --out "$run/samples.png" --seed 0
.venv/bin/protodiff summary "$run" --seed 0
echo "done: open $run/summary.png first (then reconstructions.png, samples.png, loss.png)"
