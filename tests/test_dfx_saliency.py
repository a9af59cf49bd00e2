"""DF-RISE and DF-CAM (plugin dfx) on any model: the published SSIM structure term, saliency that
finds where a denoiser looks, bounded memory, seeds, hooks that never stay behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from protodiff import load_experiment
from protodiff.errors import ProtodiffError
from protodiff.model import ConditionedDiffusion
from protodiff_dfx.saliency import DFCam, DFRise, layer_names, rise_masks, ssim_structure


def plain_ddpm() -> ConditionedDiffusion:
    config = load_experiment("ddpm-shapes", ["model.denoiser.preset=test", "model.diffusion.prediction=eps"])
    return ConditionedDiffusion.from_experiment(config).eval()


class LooksAtRegion(nn.Module):
    """A denoiser whose prediction is its input inside a fixed square and zero elsewhere."""

    def __init__(self, region: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("region", region)
        self.gain = nn.Parameter(torch.ones(()))  # a model has parameters (its device is theirs)

    def forward(self, x_t, t, cond_emb):
        return x_t * self.region * self.gain


def looking_at(rows: slice, cols: slice) -> tuple[ConditionedDiffusion, torch.Tensor, torch.Tensor]:
    """A plain DDPM whose denoiser looks only at ``rows`` x ``cols`` of 16 px images, the region
    (1, 1, 16, 16) and two seeded x_t."""
    model = plain_ddpm()
    region = torch.zeros(1, 1, 16, 16)
    region[..., rows, cols] = 1.0
    model.denoiser = LooksAtRegion(region)
    return model, region, torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def test_structure_term_is_one_for_equal_and_minus_one_for_opposite_predictions():
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim_structure(x, x), torch.ones(2), atol=1e-4)
    assert torch.allclose(ssim_structure(x, 0.5 * x + 0.2), torch.ones(2), atol=1e-3)  # structure only: not scale or mean
    assert torch.allclose(ssim_structure(x, -x), -torch.ones(2), atol=5e-3)  # C3 keeps it just above -1
    unrelated = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    assert (ssim_structure(x, unrelated).abs() < 0.15).all()


def test_masks_are_smooth_bernoulli_grids_and_seeded():
    masks = rise_masks(200, 16, 16, cell=4, probability=0.5, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (200, 1, 16, 16) and masks.min() >= 0 and masks.max() <= 1
    assert abs(masks.mean().item() - 0.5) < 0.05
    assert ((masks > 0.01) & (masks < 0.99)).any()  # upsampled bilinearly, not hard-edged
    again = rise_masks(200, 16, 16, cell=4, probability=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(masks, again)
    generator = torch.Generator().manual_seed(0)  # drawn in one call or in many: the same masks
    chunks = [rise_masks(n, 16, 16, cell=4, probability=0.5, generator=generator) for n in (7, 64, 129)]
    assert torch.equal(masks, torch.cat(chunks))


def test_df_rise_concentrates_where_the_denoiser_looks_whatever_the_batch():
    model, _region, x_t = looking_at(slice(2, 8), slice(9, 15))
    saliency = DFRise(model, num_masks=400, cell=4, batch_size=64).attribute(x_t, t=500)
    assert saliency.shape == (2, 16, 16)
    inside, outside = saliency[:, 2:8, 9:15].mean(), saliency[:, 10:, :6]
    # The masks' chance coverage is taken out: where the prediction does not look the map is flat
    # (the published sum leaves the masks' own pattern there, ~14x this spread), the region stands out.
    assert inside - outside.mean() > 5 * outside.std()
    smaller_batches = DFRise(model, num_masks=400, cell=4, batch_size=7).attribute(x_t, t=500)
    assert torch.allclose(saliency, smaller_batches, atol=1e-5)  # the same masks, drawn per batch


def test_df_rise_baselines_take_out_what_they_say():
    model, _region, x_t = looking_at(slice(2, 8), slice(9, 15))
    maps = {
        b: DFRise(model, num_masks=300, batch_size=64, baseline=b).attribute(x_t, t=500)
        for b in ("published", "mean", "coverage")
    }
    # The published map less the masks' chance coverage times the mean score is the "mean" map:
    # both keep the mean score, and they differ by one pattern on both images (times each one's mean score).
    difference = (maps["published"] - maps["mean"]).flatten(1)
    assert torch.nn.functional.cosine_similarity(difference[0], difference[1], dim=0) > 0.999
    assert torch.allclose(maps["published"].mean(), maps["mean"].mean(), atol=0.02)
    for b in ("mean", "coverage"):  # either way the square stands out of a flat rest
        outside = maps[b][:, 10:, :6]
        assert maps[b][:, 2:8, 9:15].mean() - outside.mean() > 5 * outside.std()
    with pytest.raises(ProtodiffError, match="baseline"):
        DFRise(model, baseline="none")


def test_df_rise_sees_a_corner_only_with_a_reflected_border():
    model, _region, x_t = looking_at(slice(0, 5), slice(0, 5))
    gaps = {}
    for border in ("valid", "reflect"):
        maps = DFRise(model, num_masks=300, batch_size=64, border=border).attribute(x_t, t=500)
        outside = maps[:, 8:, 8:]
        gaps[border] = (maps[:, 0:5, 0:5].mean() - outside.mean()) / outside.std()
    # Valid windows of 15 px on a 16 px image barely reach the corner: it does not stand out.
    assert gaps["valid"] < 1 and gaps["reflect"] > 5
    with pytest.raises(ProtodiffError, match="border"):
        DFRise(model, border="same")


def test_df_rise_runs_on_a_real_unet_and_follows_its_seed():
    model = plain_ddpm()
    x_t = torch.randn(1, 3, 16, 16)
    rise = DFRise(model, num_masks=20, batch_size=10)
    first = rise.attribute(x_t, t=300, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, rise.attribute(x_t, t=300, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, rise.attribute(x_t, t=300, generator=torch.Generator().manual_seed(4)))


def test_df_cam_maps_a_named_block_and_removes_its_hook_even_on_error():
    model = plain_ddpm()
    names = layer_names(model)
    assert names and all(len(shape) == 3 for shape in names.values())
    layer = next(name for name, shape in names.items() if shape[1] < 16)  # a block below full resolution
    cam = DFCam(model, layer=layer)
    x_t = torch.randn(2, 3, 16, 16)
    maps = cam.attribute(x_t, t=200)
    assert maps.shape == (2, 16, 16) and (maps >= 0).all()
    region = torch.zeros(16, 16)
    region[:8] = 1
    assert cam.attribute(x_t, t=200, region=region).shape == (2, 16, 16)
    with pytest.raises(RuntimeError):
        cam.attribute(x_t, t=200, region=torch.ones(5, 5))  # a region of the wrong size
    assert not cam.module._forward_hooks
    assert all(p.grad is None for p in model.parameters())


def test_unknown_blocks_are_named_with_suggestions():
    model = plain_ddpm()
    layer = next(iter(layer_names(model)))
    with pytest.raises(ProtodiffError, match="did you mean"):
        DFCam(model, layer=layer + "x")


def test_insertion_and_deletion_reward_the_map_of_where_the_denoiser_looks():
    from protodiff_dfx.saliency import insertion_deletion

    model, region, x_t = looking_at(slice(2, 8), slice(9, 15))
    true_map = region[0].expand(2, -1, -1) + 0.01 * torch.rand(2, 16, 16, generator=torch.Generator().manual_seed(2))
    wrong_map = 1 - true_map
    good = insertion_deletion(model, x_t, true_map, t=500)
    bad = insertion_deletion(model, x_t, wrong_map, t=500)
    assert (good["deletion"] < bad["deletion"] - 0.3).all() and (good["insertion"] > bad["insertion"] + 0.3).all()


def test_a_sampling_walk_is_explained_at_evenly_spread_steps():
    from protodiff_dfx.saliency import along_trajectory

    model = plain_ddpm()
    sampler = model.sampler("ddim", steps=10)
    x_T = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    walk = along_trajectory(DFCam(model, layer=next(iter(layer_names(model)))), model, x_T=x_T, sampler=sampler, points=4)
    steps = sampler.timesteps()
    assert walk.timesteps == [steps[0], steps[3], steps[6], steps[9]]
    assert walk.x_t.shape == (4, 2, 3, 16, 16) and walk.maps.shape == (4, 2, 16, 16)
    assert torch.equal(walk.x_t[0], x_T)  # the first kept x_t is where the walk starts
