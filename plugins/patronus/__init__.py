"""protodiff_patronus: the Patronus method (prototype-conditioned diffusion) as a protodiff plugin.

Loaded through the same entry point any third-party plugin uses. The plugin adds two kinds of
component the core does not know (``contracts.py``: ``encoder`` and ``prototype_layer``, checked by
``testing.py``), and each module below registers what it defines:
    encoder.py       encoder          patronus-conv, timm-<name>
    prototypes.py    prototype_layer  log-l2, cosine
    conditioner.py   conditioner      patronus (its latent prior: the core's latent-ddpm)
    explainers.py    explainer        prototypes (the distribution-aligned visualisation)
    localisation.py  saliency         prototypes: the best prototype's activation map, for the
                                      localisation metric
    presets/         preset           patronus-shapes (CPU) and the published configurations
                                      patronus-{fmnist,cifar10,celeba,ffhq,chexpert}
                     published        patronus: the paper's Tables 1 and 2, for the bench report
"""

from protodiff import Registries, hookimpl
from protodiff_patronus.contracts import Encoder, PrototypeLayer
from protodiff_patronus.testing import check_encoder, check_prototype_layer

protodiff_plugins = (
    "protodiff_patronus.encoder",
    "protodiff_patronus.prototypes",
    "protodiff_patronus.conditioner",
    "protodiff_patronus.presets",
    "protodiff_patronus.explainers",
    "protodiff_patronus.localisation",
)


@hookimpl
def protodiff_add_kinds(registry: Registries) -> None:
    registry.add_kind("encoder", Encoder, check=check_encoder)
    registry.add_kind("prototype_layer", PrototypeLayer, check=check_prototype_layer)
