"""Metrics of the paper's tables (TAD, attributes captured, latent AUROC, FID/KID)."""

from protodiff.metrics.base import Metric
from protodiff.metrics.fidelity import FID, KID
from protodiff.metrics.latent import TAD, AttributesCaptured, LatentAUROC

#: The core's metrics by registry name (registered by protodiff.builtins).
METRICS: dict[str, type[Metric]] = {
    "tad": TAD,
    "attributes-captured": AttributesCaptured,
    "latent-auroc": LatentAUROC,
    "fid": FID,
    "kid": KID,
}

__all__ = ["FID", "KID", "METRICS", "TAD", "AttributesCaptured", "LatentAUROC", "Metric"]
