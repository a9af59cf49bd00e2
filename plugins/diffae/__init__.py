"""protodiff_diffae: Diffusion Autoencoders (Preechakul et al., CVPR 2022) as a protodiff plugin, the
baseline Patronus compares with (its Tables 1 and 2).

A semantic encoder reads a 512-d code z_sem from the clean image and the denoiser is conditioned
on it by scaling (``scale`` mode); DDIM inversion given z_sem gives the stochastic subcode x_T, so
real images reconstruct near-exactly; the core's ``latent-ddpm`` (preset ``diffae``: DiffAE's latent
DDIM) generates z_sem from nothing; a linear classifier per attribute on normalised z_sem gives the
directions DiffAE edits along. Each module below registers what it defines:
    encoder.py       -                the half-UNet semantic encoder (used by the conditioner)
    conditioner.py   conditioner      diffae (its latent prior: latent-ddpm)
    editing.py       explainer        attribute-edit: DiffAE's attribute editing (AttributeDirections),
                                      on any run whose condition is a vector
    presets/         preset           diffae-{shapes,digits} (CPU) and the published configurations
                                      diffae-{fmnist,cifar10,celeba,ffhq,chexpert}
"""

protodiff_plugins = (
    "protodiff_diffae.conditioner",
    "protodiff_diffae.editing",
    "protodiff_diffae.presets",
)
