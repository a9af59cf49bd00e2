"""Reproduction entry points: the scripts the numbers in docs/ come from (nothing here is a test).

Each script runs as ``python experiments/NAME.py`` (the command the docs quote) or ``python -m
experiments.NAME`` from the repository root, writes only under its ``--out DIR`` and answers
``--help``; ``tests/test_experiments.py`` runs every one on a tiny budget. README.md beside this
file lists what each reproduces and its full command.

``local_concepts``      docs/local-concepts.md: the ablation table and the recipe over three seeds
``edit_methods``        docs/baselines.md, "Edits": DiffAE's edit direction against one dimension
``steering``            edit levers (guidance, extrapolation, partial trajectories, concept groups)
``counterfactual``      edits against the true counterfactual: the floor of any edit of the condition
``exponential_stages``  early against late exponential sampling, judged per attribute
``condition_value``     what the condition is worth to the denoising loss at each timestep
``localisation``        docs/localisation.md: each map source scored against the marks, three seeds
``emergence``           docs/emergence.md: when each attribute emerges in x0_hat, three seeds, both layouts
"""
