"""Performance measurements, kept apart from the tests (nothing here asserts a time).

Each script runs as ``python -m benchmarks.NAME`` or ``python benchmarks/NAME.py`` from the
repository root; ``tests/test_benchmarks.py`` runs every one on a tiny budget.

``train_throughput``  training img/s of the UNet against diffusers', the CPU presets in fp32/bf16/compiled
``methods``           Patronus and its baselines side by side: parameters and train-step img/s
``sampling``          sampling img/s against diffusers' schedulers; the quality-vs-steps table of a run
``inversion``         inversion round trips and solver errors with the exact-eps oracle
``saliency``          DF-RISE and DF-CAM: time, and how much of each map falls on the marks
``emergence``         the ``emergence`` explainer's cost against plain sampling
``explain``           each ``protodiff explain`` command, timed
``harness``, ``models``  what the scripts share: fresh-process rounds, the models compared
"""
