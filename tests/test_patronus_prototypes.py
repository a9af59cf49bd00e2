"""Prototype layers against brute-force definitions, and the Patronus conditioner around them."""

from __future__ import annotations

import pytest
import torch

from protodiff.config import ComponentSpec
from protodiff.errors import ConfigError
from protodiff_patronus.conditioner import nearest_patch_boxes
from protodiff_patronus.prototypes import distinct_loss


def layer(name: str, feature_dim: int, **options):
    return ComponentSpec("prototype_layer", name, raw=options).build(feature_dim=feature_dim)


def test_log_l2_matches_the_definition():
    proto = layer("log-l2", 8, num_prototypes=5)
    z = torch.randn(3, 8, 4, 6)
    s, maps = proto(z)
    patches = z.flatten(2).transpose(1, 2)  # (B, HW, D)
    brute = ((patches[:, None, :, :] - proto.prototypes[None, :, None, :]) ** 2).sum(-1)  # (B, m, HW)
    torch.testing.assert_close(maps.flatten(2), brute, atol=1e-4, rtol=1e-4)
    nearest = brute.min(dim=2).values
    torch.testing.assert_close(s, torch.log((nearest + 1) / (nearest + 1e-4)), atol=1e-4, rtol=1e-4)


def test_global_prototypes_read_the_mean_over_patches_and_the_rest_the_max():
    proto = layer("log-l2", 8, num_prototypes=5, global_prototypes=2)
    z = torch.randn(3, 8, 4, 6)
    s, maps = proto(z)
    every_patch = torch.log((maps + 1) / (maps + 1e-4)).flatten(2)  # (B, m, HW)
    torch.testing.assert_close(s[:, :3], every_patch[:, :3].max(dim=2).values)
    torch.testing.assert_close(s[:, 3:], every_patch[:, 3:].mean(dim=2))
    # "how much of the image": a global prototype grows with the share of patches that match it
    z = torch.randn(1, 8, 4, 4) + 3
    shares = []
    for count in (1, 4, 12):
        z.flatten(2)[0, :, :count] = proto.prototypes[4, :, None]
        shares.append(proto(z)[0][0, 4].item())
    assert shares[0] < shares[1] < shares[2]
    plain = layer("log-l2", 8, num_prototypes=5)
    plain.prototypes.data.copy_(proto.prototypes.data)
    assert torch.equal(plain(z)[0][:, :3], proto(z)[0][:, :3])  # the max-pooled ones are unchanged
    with pytest.raises(ConfigError, match=r"global_prototypes must be in \[0, 5\], got 6"):
        layer("log-l2", 8, num_prototypes=5, global_prototypes=6)


def test_log_l2_init_is_uniform_and_activation_peaks_on_an_exact_match():
    proto = layer("log-l2", 16, num_prototypes=100)
    assert proto.prototypes.min() >= 0 and proto.prototypes.max() < 1
    z = torch.randn(1, 16, 5, 5) + 3
    z[0, :, 2, 3] = proto.prototypes[7]
    s, maps = proto(z)
    assert s[0, 7].item() == pytest.approx(torch.log(torch.tensor(1 / 1e-4)).item(), rel=1e-3)
    assert maps[0, 7].flatten().argmin().item() == 2 * 5 + 3


def test_cosine_activations_are_bounded_and_maps_are_distances():
    proto = layer("cosine", 8, num_prototypes=4)
    z = torch.randn(2, 8, 3, 3)
    z[1, :, 0, 0] = proto.prototypes[2] * 5
    s, maps = proto(z)
    assert torch.all(s <= 1 + 1e-6) and torch.all(s >= -1 - 1e-6)
    assert s[1, 2].item() == pytest.approx(1.0, abs=1e-5) and maps[1, 2, 0, 0].item() == pytest.approx(0.0, abs=1e-5)


def test_distinct_loss_is_zero_for_orthogonal_and_maximal_for_identical_prototypes():
    assert distinct_loss(torch.eye(4), margin=0.5).item() == 0.0
    assert distinct_loss(torch.ones(3, 4), margin=0.2).item() == pytest.approx(0.2, abs=1e-6)
    proto = layer("log-l2", 4, num_prototypes=3, distinct_weight=2.0)
    proto.prototypes.data = torch.ones(3, 4)
    assert proto.aux_loss().item() == pytest.approx(0.4, abs=1e-6)
    assert layer("log-l2", 4).aux_loss() is None  # off by default, as published


def patronus(image_size: int = 32, **options):
    return ComponentSpec("conditioner", "patronus", raw=options).build(in_channels=3, image_size=image_size)


def test_patronus_conditioner_defaults_are_the_published_ones():
    cond = patronus()
    assert cond.dim == 100 and cond.embed_dim == 256 and cond.preferred_mode == "add"
    assert cond.names[:2] == ["proto_00", "proto_01"] and len(cond.names) == 100
    condition = cond.encode(torch.randn(2, 3, 32, 32))
    assert condition.vector.shape == (2, 100) and condition.maps.shape == (2, 100, 10, 10)
    assert condition.aux_loss is None
    assert cond.embed(condition.vector).shape == (2, 256)


def test_names_can_be_set_and_are_checked():
    cond = patronus(prototype_layer={"name": "log-l2", "num_prototypes": 2})
    cond.names = ["red mark", "stripes"]
    assert cond.encode(torch.randn(1, 3, 32, 32)).names == ["red mark", "stripes"]
    with pytest.raises(ValueError, match="expected 2 names"):
        cond.names = ["one"]


def test_nearest_patches_point_at_the_matching_patch():
    cond = patronus(prototype_layer={"name": "log-l2", "num_prototypes": 3})
    maps = torch.full((1, 3, 10, 10), 5.0)
    maps[0, 1, 4, 6] = 0.0
    box = nearest_patch_boxes(cond.encoder, maps)[0][1]
    assert box == cond.encoder.receptive_field(4, 6)
    assert (box.top, box.left, box.height, box.width) == (7, 11, 15, 15)


def test_patch_init_places_prototypes_on_distinct_patches_once():
    from protodiff_patronus.prototypes import farthest_point_patches

    z = torch.zeros(1, 2, 4, 4)
    z[0, :, 1, 2] = torch.tensor([5.0, 0.0])  # one rare patch among background
    z[0, :, 3, 0] = torch.tensor([0.0, -4.0])
    picks = farthest_point_patches(z, 3)
    assert {tuple(p.tolist()) for p in picks} == {(5.0, 0.0), (0.0, -4.0), (0.0, 0.0)}

    proto = layer("log-l2", 2, num_prototypes=3, init="patches")
    assert not proto.initialised
    s, _ = proto(z)
    assert proto.initialised and torch.allclose(s, torch.full_like(s, torch.log(torch.tensor(1e4)).item()), rtol=1e-4)
    placed = proto.prototypes.detach().clone()
    proto(torch.randn(1, 2, 4, 4))
    assert torch.equal(proto.prototypes, placed)  # only the first batch places them
    fresh = layer("log-l2", 2, num_prototypes=3, init="patches")
    fresh.load_state_dict(proto.state_dict())
    assert fresh.initialised  # a loaded model is never re-initialised


def test_decorrelation_penalises_prototypes_that_fire_on_the_same_images():
    from protodiff_patronus.prototypes import activation_correlation, correlation_penalty

    generator = torch.Generator().manual_seed(0)
    independent = torch.randn(4096, 3, generator=generator)
    assert correlation_penalty(independent) < 1e-3
    duplicated = torch.cat([independent[:, :1], independent[:, :1] * 2 + 1, independent[:, 2:]], dim=1)
    corr = activation_correlation(duplicated)
    assert torch.allclose(corr, torch.corrcoef(duplicated.T), atol=1e-4)
    assert correlation_penalty(duplicated) == pytest.approx(2 / 6, abs=1e-3)  # one pair of six off-diagonal entries

    proto = layer("log-l2", 4, num_prototypes=3, decorrelation_weight=0.5)
    proto.train()
    proto(torch.rand(8, 4, 3, 3))
    aux = proto.aux_loss()
    assert aux is not None and aux.requires_grad and aux.item() >= 0
    proto.eval()
    proto(torch.rand(8, 4, 3, 3))
    assert proto.aux_loss() is None  # a batch statistic of training only


def test_restarts_move_duplicate_prototypes_to_unexplained_patches_and_projection_onto_patches():
    from protodiff_patronus.prototypes import redundant_prototypes

    s = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    s[:, 2] = s[:, 0] * 3  # prototype 2 fires exactly where prototype 0 does
    s[:, 3] = 1.0  # prototype 3 never varies
    assert redundant_prototypes(s, 0.9).tolist() == [False, False, True, True]

    z = torch.zeros(2, 2, 3, 3)
    z[1, 1] = 0.5  # a second background shade, so activations vary over the batch
    z[0, :, 0, 0] = torch.tensor([4.0, 0.0])  # a rare patch no prototype explains
    proto = layer("log-l2", 2, num_prototypes=2, restart_every=1)
    with torch.no_grad():
        proto.prototypes.copy_(torch.tensor([[0.25, 0.0], [0.25, 0.0]]))  # two copies of the background
    proto.train()
    with torch.enable_grad():
        proto(z)
    assert {tuple(p) for p in proto.prototypes.detach().tolist()} == {(0.25, 0.0), (4.0, 0.0)}

    projecting = layer("log-l2", 2, num_prototypes=2, project_every=1)
    with torch.no_grad():
        projecting.prototypes.copy_(torch.tensor([[3.0, 0.5], [0.2, -0.1]]))
    projecting.train()
    with torch.enable_grad():
        projecting(z)
    assert projecting.prototypes.detach().tolist() == [[4.0, 0.0], [0.0, 0.0]]  # each onto its nearest patch


def test_standardise_puts_every_prototype_at_unit_scale_before_the_embedding():
    cond = patronus(prototype_layer={"name": "log-l2", "num_prototypes": 3}, standardise=True)
    vector = torch.tensor([[0.8, 5.0, 0.30], [0.4, 5.2, 0.40], [0.6, 4.8, 0.20]])
    cond.train()
    scaled = cond.embedding[0](vector)
    assert torch.allclose(scaled.mean(0), torch.zeros(3), atol=1e-5)
    assert torch.allclose(scaled.std(0, unbiased=False), torch.ones(3), atol=1e-2)  # small gaps count as much as large ones
    cond.eval()
    assert cond.embed(vector[:1]).shape == (1, cond.embed_dim)  # inference: running statistics, any batch size
    plain = patronus(prototype_layer={"name": "log-l2", "num_prototypes": 3})
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.embedding)  # off: as published


@pytest.mark.parametrize("name", ["log-l2", "cosine"])
def test_prototype_layers_compute_in_fp32_under_bf16_autocast(name):
    """The expansion |z|^2 - 2 z.p + |p|^2 loses the small distances that matter most in bf16."""
    proto = layer(name, 32, num_prototypes=4)
    z = torch.rand(2, 32, 3, 3)
    expected, expected_maps = proto(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        s, maps = proto(z)
    assert s.dtype == maps.dtype == torch.float32
    torch.testing.assert_close(s, expected)
    torch.testing.assert_close(maps, expected_maps)
