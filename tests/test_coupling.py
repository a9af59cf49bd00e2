"""``Coupling``: the other dimensions follow an edit by their regression on the edited ones over
real images, and ``follow: regression`` makes every edit (``EditSettings``, ``effects``, ``edit``)
use it, with guidance on the edited dimensions alone."""

from __future__ import annotations

import pytest
import torch

from protodiff.config import ComponentSpec
from protodiff.errors import ProtodiffError
from protodiff.explain.coupling import Coupling
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
