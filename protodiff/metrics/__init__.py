"""Metrics of the paper's tables (TAD, attributes captured, latent AUROC, FID/KID)."""

from protodiff.metrics.base import Metric

#: The core's metrics by registry name (registered by protodiff.builtins).
METRICS: dict[str, type[Metric]] = {}

__all__ = ["METRICS", "Metric"]
