"""Metrics of the paper's tables (TAD, attributes captured, latent AUROC, FID/KID)."""

from protodiff.metrics.base import Metric
from protodiff.metrics.concepts import DimensionAUROC, ReconstructionAgreement
from protodiff.metrics.inversion import InversionError
from protodiff.metrics.fidelity import FID, KID
from protodiff.metrics.latent import TAD, AttributesCaptured, LatentAUROC

#: The core's metrics by registry name (registered by protodiff.builtins).
METRICS: dict[str, type[Metric]] = {
    "tad": TAD,
    "attributes-captured": AttributesCaptured,
    "latent-auroc": LatentAUROC,
    "fid": FID,
    "kid": KID,
    "dimension-auroc": DimensionAUROC,
    "reconstruction-agreement": ReconstructionAgreement,
    "inversion-error": InversionError,
}

__all__ = [
    "FID",
    "KID",
    "METRICS",
    "TAD",
    "AttributesCaptured",
    "DimensionAUROC",
    "InversionError",
    "LatentAUROC",
    "Metric",
    "ReconstructionAgreement",
]
