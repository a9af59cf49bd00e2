"""Latent-space metrics: how well a model's condition vectors carry a dataset's attributes.

``latents.py`` encodes the first N images of a split once per evaluation; ``protocol_settings.py``
and ``protocol_scores.py`` are InfoDiffusion's protocol (its parameters, and its computations on
plain arrays); ``cross_validated.py`` is what the protocol's metrics share; ``metric_tad.py`` and
``metric_latent_auroc.py`` are the registered metrics.
"""
