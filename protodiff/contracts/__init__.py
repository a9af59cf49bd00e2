"""Every extension point's contract, one module per registry.

=====================  ===========================================  =====================================
registry               module                                       you subclass
=====================  ===========================================  =====================================
``encoder``            :mod:`protodiff.contracts.encoder`           :class:`Encoder` (and return :class:`Box`)
``prototype_layer``    :mod:`protodiff.contracts.prototype_layer`   :class:`PrototypeLayer`
``conditioner``        :mod:`protodiff.contracts.conditioner`       :class:`Conditioner` (returns :class:`Condition`)
``denoiser``           :mod:`protodiff.contracts.denoiser`          :class:`Denoiser`
``sampler``            :mod:`protodiff.contracts.sampler`           :class:`Sampler`
``latent_prior``       :mod:`protodiff.contracts.latent_prior`      :class:`LatentPrior`
``metric``             :mod:`protodiff.contracts.metric`            :class:`Metric` (receives :class:`EvalContext`)
``feature_extractor``  :mod:`protodiff.contracts.feature_extractor` :class:`FeatureExtractor`
``dataset``            :mod:`protodiff.contracts.dataset`           :class:`DatasetSource` (returns :class:`LabeledImages`)
``explainer``          :mod:`protodiff.contracts.explainer`         :class:`Explainer` (returns :class:`Explanation`)
=====================  ===========================================  =====================================

The contracts import nothing of protodiff but :mod:`protodiff._registry.component`, :mod:`protodiff.errors`
and :mod:`protodiff.io`, so a plugin can import them without pulling in the rest of the package.
``docs/architecture.md`` explains each, with every attribute a component must set.
"""

from protodiff.contracts.conditioner import Condition, Conditioner, CondMode
from protodiff.contracts.dataset import DatasetSource, DataSourceConfig, LabeledImages
from protodiff.contracts.denoiser import Denoiser
from protodiff.contracts.encoder import Box, Encoder
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.contracts.feature_extractor import FeatureExtractor
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.contracts.metric import EvalCache, EvalContext, Metric
from protodiff.contracts.prototype_layer import PrototypeLayer
from protodiff.contracts.sampler import Callback, EpsFn, Sampler, StepInfo

__all__ = [
    "Box",
    "Callback",
    "CondMode",
    "Condition",
    "Conditioner",
    "DataSourceConfig",
    "DatasetSource",
    "Denoiser",
    "Encoder",
    "EpsFn",
    "EvalCache",
    "EvalContext",
    "Explainer",
    "Explanation",
    "FeatureExtractor",
    "LabeledImages",
    "LatentPrior",
    "Metric",
    "PrototypeLayer",
    "Sampler",
    "StepInfo",
]
