"""The core's own plugin, loaded first as the plugin ``core``: its kinds and its modules.

This module is a plugin like any other: its ``protodiff_add_kinds`` adds the kinds of component
the core knows, each with its contract and its conformance check, and then every module listed
below registers the components it defines through the same ``protodiff_register`` hook a
third-party plugin implements (as pytest lists its default plugins). A new built-in component is
registered where it is defined; its module is added here once. A kind only a method needs (the
Patronus prototype layer) is added by that method's plugin, not here.
"""

from __future__ import annotations

from protodiff import testing
from protodiff._registry.hookspecs import hookimpl
from protodiff._registry.registry import Registries
from protodiff.contracts.cond_mode import ConditioningMode
from protodiff.contracts.conditioner import Conditioner
from protodiff.contracts.dataset import DatasetSource
from protodiff.contracts.denoiser import Denoiser
from protodiff.contracts.explainer import Explainer
from protodiff.contracts.feature_extractor import FeatureExtractor
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.contracts.metric import Metric
from protodiff.contracts.saliency import Saliency
from protodiff.contracts.sampler import Sampler


@hookimpl
def protodiff_add_kinds(registry: Registries) -> None:
    registry.add_kind("conditioner", Conditioner, check=testing.check_conditioner)
    registry.add_kind("denoiser", Denoiser, check=testing.check_denoiser)
    registry.add_kind("cond_mode", ConditioningMode, check=testing.check_cond_mode)
    registry.add_kind("sampler", Sampler, check=testing.check_sampler)
    registry.add_kind("latent_prior", LatentPrior, check=testing.check_latent_prior)
    registry.add_kind("explainer", Explainer, check=testing.check_explainer)
    registry.add_kind("metric", Metric, check=testing.check_constructible("metric"))
    registry.add_kind("saliency", Saliency, check=testing.check_saliency)
    registry.add_kind("feature_extractor", FeatureExtractor, check=testing.check_feature_extractor)
    registry.add_kind("dataset", DatasetSource, check=testing.check_dataset)
    #: Experiment presets: name -> the path of a YAML file a plugin ships (``registry.add_presets``).
    registry.add_kind("preset")
    #: Published numbers the bench report shows beside its own: name -> the path of a YAML file.
    registry.add_kind("published", check=testing.check_published)


protodiff_plugins = (
    "protodiff.nn.unconditional",
    "protodiff.nn.modes",
    "protodiff.nn.unet",
    "protodiff.diffusion.samplers",
    "protodiff.diffusion.dpm_solver",
    "protodiff.diffusion.latent_ddpm",
    "protodiff.data.shapes",
    "protodiff.data.digits",
    "protodiff.data.folder",
    "protodiff.data.fmnist",
    "protodiff.data.cifar10",
    "protodiff.data.celeba",
    "protodiff.data.ffhq",
    "protodiff.data.chexpert",
    "protodiff.metrics.latent.metric_tad",
    "protodiff.metrics.latent.metric_latent_auroc",
    "protodiff.metrics.fidelity.feature_extractors",
    "protodiff.metrics.fidelity.metric_fid_kid",
    "protodiff.metrics.concepts",
    "protodiff.metrics.inversion",
    "protodiff.metrics.localisation",
    "protodiff.presets",
    "protodiff.explain.edit",
    "protodiff.explain.effects",
    "protodiff.explain.shortcuts",
    "protodiff.explain.emergence",
)
