"""protodiff_dfx: the analysis tools of "visual analysis of diffusion" (DF-RISE, DF-CAM and
exponential time-step sampling) for any model the registry can build.

Each module below registers what it defines:
    exponential.py   sampler          exponential (modes early and late): DDIM along timesteps
                                      crowded into one stage of denoising
    saliency.py      -                DF-RISE and DF-CAM with captum's shape, DFRise(model).attribute(
                                      x_t, t=..., condition=...) and DFCam(model, layer=...), and
                                      layer_names(model), the blocks DF-CAM can read
    explainers.py    explainer        df-rise, df-cam: `protodiff explain df-rise RUN` draws image |
                                      x_t | saliency for real images diffused to step t
"""

from protodiff_dfx.saliency import DFCam, DFRise, layer_names

protodiff_plugins = ("protodiff_dfx.exponential", "protodiff_dfx.explainers", "protodiff_dfx.localisation")
__all__ = ["DFCam", "DFRise", "layer_names"]
