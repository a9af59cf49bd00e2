"""Evaluation metrics, one folder or module per family; each module registers its metrics.

``latent/``
    How readable a model's condition vectors are: ``tad``, ``attributes-captured`` and
    ``latent-auroc`` under InfoDiffusion's cross-validated protocol.
``fidelity/``
    ``fid`` and ``kid`` through torch-fidelity, with their registered feature extractors.
``concepts.py``
    ``dimension-auroc`` (which dimension responds to which attribute) and
    ``reconstruction-agreement`` (does a regeneration keep the attributes, judged by
    ``attribute_classifier.py``).
``inversion.py``
    ``inversion-error``: the DDIM invert-then-regenerate round trip.

The contract, with the evaluation context every metric receives, is
:mod:`protodiff.contracts.metric`; evaluation itself is :func:`protodiff.evaluate`.
"""
