"""protodiff_infodiff: InfoDiffusion (Wang et al., ICML 2023) as a protodiff plugin, the baseline
Patronus compares with (its Tables 1 and 2).

An encoder shaped like a whole UNet reads a low-dimensional latent from the clean image, the
denoiser is conditioned on it by adaptive group normalisation (``adagn``: scale and shift), and
the latent is regularised towards N(0, I) by an MMD term (weight 0.1 as published) and optionally
a KL term on mean and log-variance heads. With both weights 0 it is InfoDiffusion's own "DiffAE"
ablation, a configuration rather than code. Each module below registers what it defines:
    encoder.py       -                the UNet-shaped encoder (used by the conditioner)
    regularisers.py  -                the MMD and KL terms
    conditioner.py   conditioner      infodiff (its latent prior: latent-ddpm)
    prior.py         latent_prior     standard-normal (the prior the regularisers pull towards)
    presets/         preset           infodiff-{shapes,digits} (CPU) and the published configurations
                                      infodiff-{fmnist,cifar10,celeba,ffhq,chexpert}
"""

protodiff_plugins = (
    "protodiff_infodiff.conditioner",
    "protodiff_infodiff.prior",
    "protodiff_infodiff.presets",
)
