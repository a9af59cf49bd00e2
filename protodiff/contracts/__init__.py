"""The contract of every kind of component the core adds, one module per kind.

=====================  ===========================================  =====================================
kind                   module                                       you subclass
=====================  ===========================================  =====================================
``conditioner``        :mod:`protodiff.contracts.conditioner`       :class:`Conditioner` (returns :class:`Condition`)
``denoiser``           :mod:`protodiff.contracts.denoiser`          :class:`Denoiser`
``cond_mode``          :mod:`protodiff.contracts.cond_mode`         :class:`ConditioningMode`
``sampler``            :mod:`protodiff.contracts.sampler`           :class:`Sampler`
``latent_prior``       :mod:`protodiff.contracts.latent_prior`      :class:`LatentPrior`
``metric``             :mod:`protodiff.contracts.metric`            :class:`Metric` (receives :class:`EvalContext`)
``feature_extractor``  :mod:`protodiff.contracts.feature_extractor` :class:`FeatureExtractor`
``dataset``            :mod:`protodiff.contracts.dataset`           :class:`DatasetSource` (returns :class:`LabeledImages`)
``explainer``          :mod:`protodiff.contracts.explainer`         :class:`Explainer` (returns :class:`Explanation`)
=====================  ===========================================  =====================================

A plugin adds kinds of its own with their contracts (Patronus: ``encoder`` and ``prototype_layer``,
in ``protodiff_patronus.contracts``). The contracts import nothing of protodiff at run time but
:mod:`protodiff._registry.component`, :mod:`protodiff.errors` and :mod:`protodiff.io`, so a plugin
can import them without pulling in the rest of the package. ``docs/architecture.md`` explains
each, with every attribute a component must set.
"""

from typing import Any

from protodiff.contracts.cond_mode import ConditioningMode
from protodiff.contracts.conditioner import Condition, Conditioner, CondMode
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.contracts.denoiser import Denoiser
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.contracts.feature_extractor import FeatureExtractor
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.contracts.metric import EvalCache, EvalContext, Metric
from protodiff.contracts.sampler import Callback, EpsFn, Sampler, StepInfo

__all__ = [
    "Callback",
    "CondMode",
    "Condition",
    "Conditioner",
    "ConditioningMode",
    "DataSourceConfig",
    "DatasetSource",
    "Denoiser",
    "EpsFn",
    "EvalCache",
    "EvalContext",
    "Explainer",
    "Explanation",
    "FeatureExtractor",
    "LabeledImages",
    "LatentPrior",
    "Metric",
    "Sampler",
    "StepInfo",
]

#: Names that left the core with the kinds only one method uses.
_LEFT = {"Encoder": "Encoder, Box", "Box": "Encoder, Box", "PrototypeLayer": "PrototypeLayer, require_prototypes"}


def __getattr__(name: str) -> Any:
    if name in _LEFT:
        raise ImportError(
            f"protodiff.contracts.{name} has moved to the Patronus plugin: from protodiff_patronus.contracts import {_LEFT[name]}"
        )
    raise AttributeError(f"module 'protodiff.contracts' has no attribute {name!r}")
