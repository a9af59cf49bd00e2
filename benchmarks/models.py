"""The networks the benchmarks time: protodiff's at the published Patronus config, and diffusers'
``UNet2DModel`` built to the same architecture (the reference, from the optional ``bench`` extra).

Imported by the benchmark scripts beside it as ``benchmarks.models``.
"""

from __future__ import annotations

from protodiff.model import ConditionedDiffusion

#: protodiff candidates: denoiser preset and whether channels_last stays on.
UNETS = {"unet-paper": ("paper", True), "unet-paper-nchw": ("paper", False), "unet-tiny": ("tiny", True)}


def protodiff_model(name: str, image_size: int, channels: int) -> ConditionedDiffusion:
    """A protodiff model: ``unet-paper`` (the published UNet, unconditional, eps-prediction as
    published), ``unet-paper-nchw``, ``unet-tiny``, or the full model of a registered preset."""
    from protodiff.experiment import load_experiment

    overrides = [f"data.image_size={image_size}"]
    if name in UNETS:
        preset, channels_last = UNETS[name]
        overrides += [f"model.denoiser.preset={preset}", "model.conditioner.name=none", "model.diffusion.prediction=eps"]
        if not channels_last:
            overrides.append("model.denoiser.channels_last=false")
        config = load_experiment("ddpm-shapes", overrides)
    else:
        config = load_experiment(name, overrides)
    model = ConditionedDiffusion.from_experiment(config)
    if model.in_channels != channels:
        raise SystemExit(f"{name}: its dataset has {model.in_channels} channels, the benchmark uses {channels}")
    return model


def diffusers_unet(image_size: int, channels: int):
    """diffusers' ``UNet2DModel`` with the published Patronus UNet's architecture: 64 base channels
    x (1, 2, 4, 4), 2 res blocks per level, GroupNorm(8), dropout 0.1, attention only in the
    bottleneck (4 heads of 64 channels)."""
    try:
        from diffusers import UNet2DModel
    except ImportError:
        raise SystemExit("the diffusers reference needs `pip install diffusers` (or the `bench` extra)") from None
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        layers_per_block=2,
        block_out_channels=(64, 128, 256, 256),
        down_block_types=("DownBlock2D",) * 4,
        up_block_types=("UpBlock2D",) * 4,
        norm_num_groups=8,
        attention_head_dim=64,
        dropout=0.1,
    )
