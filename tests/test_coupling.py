"""``Coupling``: the other dimensions follow an edit by their regression on the edited ones over
real images, and ``follow: regression`` makes every edit (``EditSettings``, ``effects``, ``edit``)
use it, with guidance on the edited dimensions alone."""

from __future__ import annotations

import pytest
import torch

from protodiff.config import ComponentSpec
from protodiff.errors import ProtodiffError
from protodiff.explain.coupling import Coupling, ModeShift, OneModeWarning, coupling_for, local_quantile
from protodiff.explain.dimensions import OutOfRangeWarning
from protodiff.explain.edit import EditSettings

DDIM_2 = ComponentSpec("sampler", "ddim", raw={"steps": 2})


def _reference(n: int = 4000) -> torch.Tensor:
    """Three dimensions: b = 2a + small noise, c = -a + small noise, d independent of a."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, generator=g)
    b = 2 * a + 0.05 * torch.randn(n, generator=g)
    c = -a + 0.05 * torch.randn(n, generator=g)
    d = torch.randn(n, generator=g)
    return torch.stack([a, b, c, d], dim=1)


def test_dimensions_that_fire_together_follow_and_an_unrelated_one_stays():
    coupling = Coupling.fit(_reference())
    vectors = torch.tensor([[0.0, 0.0, 0.0, 0.5]])
    edited = vectors.clone()
    edited[0, 0] = 1.0
    followed, context = coupling.follow(vectors, edited)
    assert followed[0, 0] == 1.0  # the edited value is kept exactly
    assert followed[0, 1] == pytest.approx(2.0, abs=0.05)  # fires with it: moves with it, by its slope
    assert followed[0, 2] == pytest.approx(-1.0, abs=0.05)  # excludes it: moves away
    assert followed[0, 3] == pytest.approx(0.5, abs=0.05)  # unrelated: stays
    # The context is the followed vector with the edited dimension back at its old value.
    assert context[0, 0] == 0.0 and torch.equal(context[0, 1:], followed[0, 1:])


def test_several_edited_dimensions_are_followed_jointly_and_unedited_rows_unchanged():
    """Rows that edit different dimensions are each followed given their own edits; a row that edits
    nothing comes back as it was, and its context is itself."""
    coupling = Coupling.fit(_reference())
    vectors = torch.zeros(3, 4)
    edited = vectors.clone()
    edited[0, 0] = 1.0
    edited[1, [0, 3]] = torch.tensor([1.0, 2.0])
    followed, context = coupling.follow(vectors, edited)
    assert followed[1, 3] == 2.0 and followed[1, 1] == pytest.approx(2.0, abs=0.05)
    assert followed[0, 3] == pytest.approx(0.0, abs=0.05)
    assert torch.equal(followed[2], vectors[2]) and torch.equal(context[2], vectors[2])
    assert torch.equal(context[1, [0, 3]], vectors[1, [0, 3]])


def test_given_dimensions_are_held_and_what_follows_only_through_them_stays():
    """A warm cast seen mostly on a light background: raising the warm prototype (0), a plain
    regression moves a second light-background prototype (1) with it; with the light prototype (2)
    given, that one stays, the given one keeps its value exactly, and another warm prototype (3)
    still follows."""
    g = torch.Generator().manual_seed(0)
    warm = (torch.rand(4000, generator=g) > 0.5).float()
    light = (torch.rand(4000, generator=g) < torch.where(warm > 0, 0.9, 0.3)).float()
    noise = torch.randn(4000, 4, generator=g) * torch.tensor([0.05, 0.3, 0.05, 0.3])
    reference = torch.stack([warm, light, light, warm], dim=1) + noise
    vectors = torch.tensor([[0.0, 0.2, 0.1, 0.0]])
    edited = vectors.clone()
    edited[0, 0] = 1.0
    plain, _ = Coupling.fit(reference).follow(vectors, edited)
    given, context = Coupling.fit(reference, given=(2,)).follow(vectors, edited)
    assert plain[0, 1] - vectors[0, 1] > 0.5 and plain[0, 2] - vectors[0, 2] > 0.5
    assert given[0, 1] == pytest.approx(0.2, abs=0.05) and given[0, 2] == 0.1
    assert given[0, 3] == pytest.approx(1.0, abs=0.05) and given[0, 0] == 1.0
    assert context[0, 0] == 0.0 and torch.equal(context[0, 1:], given[0, 1:])
    # A given dimension the edit sets itself is edited, not held.
    both = edited.clone()
    both[0, 2] = 0.9
    assert Coupling.fit(reference, given=(2,)).follow(vectors, both)[0][0, 2] == 0.9
    with pytest.raises(ProtodiffError, match="given dimensions"):
        Coupling.fit(reference, given=(4,))


def test_duplicate_dimensions_stay_finite():
    """Two identical dimensions make the covariance singular; the solve is ridged, not NaN."""
    a = torch.randn(100, 1, generator=torch.Generator().manual_seed(1))
    coupling = Coupling.fit(torch.cat([a, a, -a], dim=1))
    vectors = torch.zeros(1, 3)
    followed, _ = coupling.follow(vectors, torch.tensor([[1.0, 1.0, 0.0]]))
    assert torch.isfinite(followed).all() and followed[0, 2] == pytest.approx(-1.0, abs=1e-2)


def test_bad_input_is_one_line():
    with pytest.raises(ProtodiffError, match="at least 2 real images"):
        Coupling.fit(torch.zeros(1, 4))
    coupling = Coupling.fit(_reference(10))
    with pytest.raises(ProtodiffError, match=r"must both be \(B, 4\)"):
        coupling.follow(torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="follow must be"):
        EditSettings(follow="sideways")  # type: ignore[arg-type]
    with pytest.raises(ProtodiffError, match="needs --set follow=regression"):
        EditSettings(given=("proto_01",))


def _backgrounds(n: int = 2000) -> torch.Tensor:
    """A "warm" dimension 0 that reads up to 1.0 on a light background (dimension 1 near 1) and
    only up to 0.3 on a dark one (near 0), and an unrelated dimension 2."""
    g = torch.Generator().manual_seed(1)
    light = torch.rand(n, generator=g) < 0.5
    background = light.float() + 0.05 * torch.randn(n, generator=g)
    warm = torch.rand(n, generator=g) * torch.where(light, 1.0, 0.3)
    return torch.stack([warm, background, torch.randn(n, generator=g)], dim=1)


def test_local_quantile_is_the_maximum_among_images_alike_in_the_given_dimensions():
    reference = _backgrounds()
    dark, light = torch.tensor([[0.1, 0.0, 0.0]]), torch.tensor([[0.1, 1.0, 0.0]])
    queries = torch.cat([dark, light])
    local = local_quantile(reference, queries, 0, given=[1], neighbours=100)
    assert 0.25 < local[0] <= 0.3 + 1e-6 and local[1] > 0.9  # the dark image's maximum is a dark image's
    # Over every reference image it is the plain quantile, whatever the image.
    everywhere = local_quantile(reference, queries, 0, given=[1], neighbours=len(reference), quantile=0.9)
    assert torch.allclose(everywhere, torch.quantile(reference[:, 0], 0.9).expand(2))
    # The dimension itself is not among those the neighbours are found by.
    assert torch.equal(local_quantile(reference, queries, 0, given=[0, 1], neighbours=100), local)
    with pytest.raises(ProtodiffError, match="give at least one besides 0"):
        local_quantile(reference, queries, 0, given=[0], neighbours=100)
    with pytest.raises(ProtodiffError, match="between 2 and the 2000 reference images, got 5000"):
        local_quantile(reference, queries, 0, given=[1], neighbours=5000)


def test_effects_raise_to_the_local_maximum_when_asked(tiny_patronus):
    """``effects`` with ``neighbours``: one enhanced value per image; over every reference image it
    is the plain effect matrix; it needs ``given``."""
    from protodiff.explain.effects import EffectsExplainer, effect_matrix, enhanced_batch, local_enhanced_values
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    model, images, reference = tiny_patronus
    vectors = model.encode(images).vector.detach()
    given = (1, 2)
    high = local_enhanced_values(reference, vectors, given, neighbours=4, quantile=1.0)
    assert high.shape == vectors.shape
    assert torch.equal(high[:, 3], local_quantile(reference, vectors, 3, given, 4))
    # With one given dimension, that dimension has no other to find neighbours by: its plain maximum.
    alone = local_enhanced_values(reference, vectors, (1,), neighbours=4, quantile=1.0)
    assert (alone[:, 1] == reference[:, 1].max()).all() and torch.equal(
        alone[:, 3], local_quantile(reference, vectors, 3, (1,), 4)
    )
    batch = enhanced_batch(vectors, high).view(len(high[0]) + 1, len(vectors), -1)
    assert torch.equal(batch[4, :, 3], high[:, 3]) and torch.equal(batch[4, :, 2], vectors[:, 2])

    classifier = AttributeClassifier(["mark", "tint"], images.shape[1], images.shape[-1], ClassifierConfig(widths=(4, 8))).eval()
    sampler = model.sampler("ddim", steps=2)
    settings = EditSettings(follow="regression", given=("proto_01", "proto_02"))
    common = dict(sampler=sampler, reference=reference, settings=settings)
    plain = effect_matrix(model, images, classifier, **common)
    everywhere = effect_matrix(model, images, classifier, neighbours=len(reference), **common)
    near = effect_matrix(model, images, classifier, neighbours=2, **common)
    assert torch.allclose(plain.change, everywhere.change, atol=1e-6)
    assert not torch.allclose(plain.change, near.change, atol=1e-5)
    with pytest.raises(ValueError, match="name them with --set given"):
        EffectsExplainer.Config(neighbours=100, follow="regression")


def test_a_mode_shift_moves_the_whole_condition_towards_the_edited_dimension_extreme_mode():
    """``follow: mode``: a light prototype whose values have two modes (dark images low, light ones
    high) and two more background prototypes that move with the split. Lowering the light prototype
    of a light image moves it by the dark images' mean vector minus the light ones' (whatever value
    was asked for), raising it on a dark image by the reverse; an image already in the mode it is
    moved towards stays, as does a row that changes nothing; the context is the row itself; a
    dimension with one mode has nothing to move towards."""
    g = torch.Generator().manual_seed(0)
    dark = torch.rand(3000, generator=g) < 0.4
    light = torch.where(dark, 0.1, 0.9) + 0.03 * torch.randn(3000, generator=g)
    reference = torch.stack(
        [light, torch.where(dark, 1.0, 0.0), torch.where(dark, -0.5, 0.5), torch.randn(3000, generator=g)], dim=1
    ) + 0.02 * torch.randn(3000, 4, generator=g)
    shifts = ModeShift.fit(reference)
    towards_dark = reference[dark].mean(dim=0) - reference[~dark].mean(dim=0)
    torch.testing.assert_close(shifts.shift(0, lower=True), towards_dark)
    torch.testing.assert_close(shifts.shift(0, lower=False), -towards_dark)
    with pytest.warns(OneModeWarning, match="dimension 3 has one mode"):
        assert not shifts.shift(3).any()  # a Gaussian: nothing to move towards
    a_light, a_dark = reference[~dark][0], reference[dark][0]
    vectors = torch.stack([a_light, a_dark, a_dark, a_light, a_light])
    edited = vectors.clone()
    edited[0, 0] -= 5.0  # a light image lowered (how far: unread)
    edited[1, 0] += 0.01  # a dark one raised
    edited[2, 0] -= 0.01  # a dark one lowered: already there
    edited[3, 0] += 0.01  # a light one raised: already there
    followed, context = shifts.follow(vectors, edited)
    torch.testing.assert_close(followed[0], vectors[0] + towards_dark)
    torch.testing.assert_close(followed[1], vectors[1] - towards_dark)
    torch.testing.assert_close(followed[2:], vectors[2:])
    assert torch.equal(context, vectors)
    torch.testing.assert_close(shifts.outside(0, torch.tensor([0.9, 0.1]), lower=True), torch.tensor([1.0, 0.0]))
    assert isinstance(coupling_for("mode", reference), ModeShift) and coupling_for("none", reference) is None
    with pytest.raises(ProtodiffError, match="must both be"):
        shifts.follow(vectors[:, :3], edited[:, :3])
    with pytest.raises(ProtodiffError, match="needs --set follow=regression"):
        EditSettings(follow="mode", given=("proto_01",))


def test_follow_mode_edits_regenerate_under_the_shifted_condition(tiny_patronus):
    """Through ``EditSettings``: an edit with ``follow: mode`` regenerates under the row moved by the
    edited dimension's mode shift, guided away from the row itself, and differs from the held edit."""
    model, images, reference = tiny_patronus
    sampler = model.sampler("ddim", steps=2)
    vectors = model.encode(images).vector
    x_T = model.invert(images, condition=vectors, sampler=sampler)
    g = torch.Generator().manual_seed(0)
    two_modes = reference.repeat(20, 1) + 0.01 * torch.randn(20 * len(reference), reference.shape[1], generator=g)
    two_modes[::2, 0] += 1.0  # dimension 0: half the images one mode, half another
    shifts = ModeShift.fit(two_modes)
    edited = vectors.clone()
    edited[:, 0] += 0.1
    settings = EditSettings(guidance=2.0, follow="mode")
    condition, context = settings.condition(model, images, edited, shifts)
    torch.testing.assert_close(condition, vectors + shifts.shift(0))
    assert torch.equal(context, vectors) and shifts.shift(0)[0] > 0.9
    moved = settings.edit(model, images, edited, sampler=sampler, x_T=x_T, coupling=shifts)
    held = EditSettings(guidance=2.0).edit(model, images, edited, sampler=sampler, x_T=x_T)
    assert not torch.allclose(moved, held, atol=1e-4)
    # ``effects`` under the same setting: its mode shifts are fitted on the reference it is given.
    from protodiff.explain.effects import effect_matrix
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    classifier = AttributeClassifier(["mark"], images.shape[1], images.shape[-1], ClassifierConfig(widths=(4, 8))).eval()
    plain = effect_matrix(model, images, classifier, sampler=sampler, reference=two_modes)
    with pytest.warns(OneModeWarning, match="one mode"):  # the other dimensions: nothing to move towards
        shifted = effect_matrix(model, images, classifier, sampler=sampler, reference=two_modes, settings=settings)
    assert torch.allclose(plain.before, shifted.before, atol=1e-6) and not torch.allclose(plain.change, shifted.change)


def test_follow_regression_edits_differ_and_need_a_reference(tiny_patronus):
    """Through ``EditSettings``: a followed edit is not the held one, is deterministic, and without a
    coupling is a one-line error naming the fix."""
    model, images, reference = tiny_patronus
    sampler = model.sampler("ddim", steps=2)
    vectors = model.encode(images).vector
    x_T = model.invert(images, condition=vectors, sampler=sampler)
    edited = vectors.clone()
    edited[:, 0] = reference[:, 0].max()
    coupling = Coupling.fit(reference)
    held = EditSettings(guidance=2.0).edit(model, images, edited, sampler=sampler, x_T=x_T)
    follow = EditSettings(guidance=2.0, follow="regression")
    followed = follow.edit(model, images, edited, sampler=sampler, x_T=x_T, coupling=coupling)
    again = follow.edit(model, images, edited, sampler=sampler, x_T=x_T, coupling=coupling)
    assert torch.equal(followed, again) and not torch.allclose(followed, held, atol=1e-4)
    # The unedited vector is not followed anywhere: the same regeneration either way.
    same = follow.edit(model, images, vectors, sampler=sampler, x_T=x_T, coupling=coupling)
    assert torch.allclose(same, EditSettings().edit(model, images, vectors, sampler=sampler, x_T=x_T), atol=1e-5)
    with pytest.raises(ProtodiffError, match="follow=none"):
        follow.edit(model, images, edited, sampler=sampler, x_T=x_T)


@pytest.fixture(scope="module")
def tiny_patronus():
    from conftest import tiny_conditional_model

    model, data = tiny_conditional_model("patronus")
    images = torch.stack([data[i][0] for i in range(3)])
    reference = model.encode(torch.stack([data[i][0] for i in range(16)])).vector.detach()
    return model, images, reference


def test_effect_matrix_and_edit_explainer_follow_when_asked(tiny_patronus):
    """``effects`` fits its coupling on the reference vectors; ``explain edit`` records the followed
    vectors it regenerated under, and the setting, in its output."""
    from protodiff.explain.edit import EditExplainer
    from protodiff.explain.effects import effect_matrix
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    model, images, reference = tiny_patronus
    classifier = AttributeClassifier(["mark", "tint"], images.shape[1], images.shape[-1], ClassifierConfig(widths=(4, 8))).eval()
    sampler = model.sampler("ddim", steps=2)
    held = effect_matrix(model, images, classifier, sampler=sampler, reference=reference)
    follow = EditSettings(follow="regression")
    followed = effect_matrix(model, images, classifier, sampler=sampler, reference=reference, settings=follow)
    assert torch.allclose(held.before, followed.before, atol=1e-6)  # the unedited regeneration is the same
    assert not torch.allclose(held.change, followed.change, atol=1e-5)

    explainer = EditExplainer(EditExplainer.Config(to=["proto_00=2.0"], follow="regression", sampler=DDIM_2))
    with pytest.warns(OutOfRangeWarning):  # 2.0 is far above what the untrained model's images give
        out = explainer.explain(model, images)
    assert out.meta["follow"] == "regression"
    vectors, edited = out.tensors["vectors"], out.tensors["edited_vectors"]
    assert (edited[:, 0] == 2.0).all() and not torch.allclose(edited[:, 1:], vectors[:, 1:])


def test_emergence_follows_when_asked(tiny_patronus):
    """``explain emergence`` walks the same edit as ``explain edit`` with ``follow: regression``: the
    enhanced dimension's group moves with it, in the walk and in the partial regenerations."""
    from protodiff.explain.emergence import EmergenceExplainer
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    model, images, _ = tiny_patronus
    classifier = AttributeClassifier(["mark", "tint"], images.shape[1], images.shape[-1], ClassifierConfig(widths=(4, 8))).eval()
    held = EmergenceExplainer(EmergenceExplainer.Config(sampler=DDIM_2)).explain(model, images)
    config = EmergenceExplainer.Config(sampler=DDIM_2, follow="regression", partial_starts=2)
    followed = EmergenceExplainer(config).explain(model, images, classifier=classifier)
    assert (held.meta["follow"], followed.meta["follow"]) == ("none", "regression")
    assert not torch.allclose(held.tensors["activation"], followed.tensors["activation"], atol=1e-5)
    assert followed.tensors["partial_effect"].isfinite().all()
    with pytest.raises(ValueError, match="follow must be"):
        EmergenceExplainer.Config(follow="sideways")  # type: ignore[arg-type]
