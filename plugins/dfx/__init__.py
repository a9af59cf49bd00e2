"""protodiff_dfx: the analysis tools of "visual analysis of diffusion" (DF-RISE, DF-CAM and
exponential time-step sampling) for any model the registry can build.

Each module below registers what it defines:
    exponential.py   sampler          exponential (modes early and late): DDIM along timesteps
                                      crowded into one stage of denoising
"""

protodiff_plugins = ("protodiff_dfx.exponential",)
