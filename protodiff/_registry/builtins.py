"""The core's built-in plugin modules, loaded first as the plugin ``core``.

This module is a plugin like any other: the plugin manager loads it and then every module it lists
below, and each of those registers the components it defines through the same
``protodiff_register`` hook a third-party plugin implements (as pytest lists its default plugins).
A new built-in component is registered where it is defined; its module is added here once.
"""

protodiff_plugins = (
    "protodiff.nn.unconditional",
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
    "protodiff.presets",
    "protodiff.explain.edit",
    "protodiff.explain.effects",
    "protodiff.explain.shortcuts",
    "protodiff.explain.emergence",
)
