"""protodiff_patronus: the Patronus method (prototype-conditioned diffusion) as a protodiff plugin.

Loaded through the same entry point any third-party plugin uses; each module below registers what
it defines:
    encoder.py       encoder          patronus-conv, timm-<name>
    prototypes.py    prototype_layer  log-l2, cosine
    conditioner.py   conditioner      patronus (its latent prior: the core's latent-ddpm)
    explainers.py    explainer        prototypes (the distribution-aligned visualisation)
    presets/         preset           patronus-shapes (CPU) and the published configurations
                                      patronus-{fmnist,cifar10,celeba,ffhq,chexpert}
"""

protodiff_plugins = (
    "protodiff_patronus.encoder",
    "protodiff_patronus.prototypes",
    "protodiff_patronus.conditioner",
    "protodiff_patronus.presets",
    "protodiff_patronus.explainers",
)
