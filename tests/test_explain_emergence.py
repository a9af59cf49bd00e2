"""``emergence``: the crossing maths on hand-made curves (final- and peak-relative, per image), the
paper's definition (the enhanced walk against the image itself) and the trajectory reading on a
tiny untrained model, partial regeneration, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
import torch

from protodiff.config import ComponentSpec
from protodiff.data.shapes import ATTRIBUTES
from protodiff.encoding import encode_split
from protodiff.errors import ProtodiffError
from protodiff.explain.effects import effect_matrix
from protodiff.explain.emergence import (
    EmergenceExplainer,
    Partial,
    crossing,
    crossings,
    per_image_crossings,
    spread,
    start_positions,
    summarise,
)
from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig
from protodiff.model import ConditionedDiffusion

DDIM_2 = ComponentSpec("sampler", "ddim", raw={"steps": 2})
DDIM_3 = ComponentSpec("sampler", "ddim", raw={"steps": 3})


def tiny(conditioner: str) -> tuple[ConditionedDiffusion, object]:
    from conftest import tiny_conditional_model

    return tiny_conditional_model(conditioner)


@pytest.fixture(scope="module")
def setup():
    model, data = tiny("patronus")
    classifier = AttributeClassifier.for_dataset(data, ClassifierConfig(widths=(4, 8))).eval()
    images = torch.stack([data[i][0] for i in range(3)])
    return model, data, classifier, images


# -- the crossing maths, on hand-made curves ---------------------------------------------------


def test_crossing_is_the_first_timestep_at_half_the_final_value():
    curves = torch.tensor([[0.0, 0.0, 0.0], [0.2, -0.1, 0.0], [0.6, -0.3, 0.0], [1.0, -0.4, 0.0]])
    assert crossing([750, 500, 250, 0], curves) == [250, 250, None]


def test_a_curve_that_falls_back_has_a_peak_crossing_and_no_final_one():
    steps = [800, 600, 400, 200, 0]
    curves = torch.tensor(
        [
            # rises, stays | rises, falls back to ~0 | flat | falls back to a third of its peak | never rises
            [0.0, 0.0, 0.0, 0.0, -0.2],
            [0.3, 0.2, 0.0, 0.1, -0.3],
            [0.6, 0.8, 0.0, 0.9, -0.1],
            [0.9, 0.4, 0.0, 0.6, -0.1],
            [1.0, 0.01, 0.0, 0.3, -0.1],
        ]
    )
    out = crossings(steps, curves)
    assert out.peak == [400, 400, None, 400, None]
    assert out.final == [400, None, None, None, None]
    assert out.fell_back == [False, True, False, True, False]
    # a peak below the floor is no effect at all: neither crossing, and nothing fell back
    assert crossings(steps, curves, floor=0.95) == type(out)([400] + [None] * 4, [400] + [None] * 4, [False] * 5)


def test_per_image_crossings_and_their_spread():
    steps = [900, 600, 300, 0]
    # two curves (C) over four images (N): image n of curve 0 reaches half its peak at step n
    ramp = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    curves = torch.stack([ramp, torch.zeros(4, 4)], dim=2)  # (S, N, C)
    curves[:, 3, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # one image of curve 1 shows mid-walk and fades
    first, second = per_image_crossings(steps, curves)
    assert first.peak == [900, 600, 300, 0] and first.final == [900, 600, 300, 0] and not any(first.fell_back)
    assert second.peak == [None, None, None, 600] and second.final == [None] * 4 and second.fell_back == [False] * 3 + [True]
    assert spread(first.peak) == {"images": 4, "median": 450.0, "q1": 225.0, "q3": 675.0}
    assert spread(second.final) == {"images": 0, "median": None, "q1": None, "q3": None}
    entries = summarise(steps, curves)
    assert entries[0]["per_image"]["crossing_peak_t"]["median"] == 450.0
    assert entries[0]["crossing_peak_t"] == 600  # the mean curve (0.25, 0.5, ...) reaches half its peak at 600
    assert entries[1]["images"] == 1 and entries[1]["peak"] == 1.0  # the mean is over the images whose curve rose
    assert entries[1]["per_image"]["fell_back"] == 1 and entries[1]["fell_back"] and entries[1]["crossing_final_t"] is None


def test_partial_latest_start_is_the_smallest_t_at_half_the_effect_from_the_first_start():
    effect = torch.tensor([[0.0, 0.1, 0.0], [0.1, -0.3, 0.0], [0.5, -0.3, 0.0], [0.8, -0.4, 0.0]])  # starts ascending
    partial = Partial([50, 300, 600, 999], effect, [0, 1, 2], [0, 1, 2], torch.zeros(4, 5, 3, 8, 8))
    assert partial.latest() == [600, 300, None]
    assert start_positions(20, 5) == [0, 5, 10, 14, 19] and start_positions(3, 5) == [0, 1, 2]


# -- the explainer on a tiny model ---------------------------------------------------------------


def test_emergence_compares_the_enhanced_walk_with_the_image_by_default(setup, tmp_path):
    """The paper's definition: s(x0_hat of the enhanced walk at t) - s(x0), per image and dimension;
    ``against=trajectory`` subtracts the own walk's x0_hat instead, whose last step is the effect matrix."""
    model, data, classifier, images = setup
    config = EmergenceExplainer.Config(sampler=DDIM_3, reference=4)
    explanation = EmergenceExplainer(config).explain(model, images, data=data, classifier=classifier)
    explanation.save(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    k, n = model.conditioner.dim, len(images)
    assert meta["against"] == "image" and len(meta["timesteps"]) == 3 and list(meta["dimensions"]) == model.conditioner.names
    activation = explanation.tensors["activation"]
    assert activation.shape == (3, n, k) and explanation.tensors["attribute"].shape == (3, k, len(ATTRIBUTES))
    assert explanation.tensors["attribute_images"].shape == (3, n, len(ATTRIBUTES))
    assert set(meta["attributes"]) == set(ATTRIBUTES)
    entry = meta["attributes"]["red_square"]
    assert {"dimension", "final", "peak", "crossing_final_t", "crossing_peak_t", "fell_back", "per_image"} <= set(entry)
    assert set(entry["per_image"]["crossing_peak_t"]) == {"images", "median", "q1", "q3"}

    other = EmergenceExplainer(EmergenceExplainer.Config(sampler=DDIM_3, reference=4, against="trajectory"))
    walk = other.explain(model, images, data=data, classifier=classifier)
    sampler = model.sampler("ddim", steps=3)
    matrix = effect_matrix(model, images, classifier, sampler=sampler, reference=encode_split(model, data, limit=4).vectors)
    assert torch.allclose(walk.tensors["attribute"][-1], matrix.effect, atol=1e-4)  # the last x0_hat is the image
    # the two readings differ by the own walk's distance from the image: at the end, the unedited
    # regeneration's against the image's (judged by the effect matrix's own code), for every dimension
    assert walk.tensors["activation"].shape == activation.shape
    probabilities = classifier.predict_proba(images)
    assert matrix.before is not None
    assert torch.allclose(
        explanation.tensors["attribute"][-1] - walk.tensors["attribute"][-1],
        (matrix.before - probabilities).mean(dim=0).expand(k, -1),
        atol=1e-4,
    )
    per_image = explanation.tensors["attribute_images"][-1] - walk.tensors["attribute_images"][-1]
    walk.save(tmp_path / "walk")
    trajectory = json.loads((tmp_path / "walk" / "meta.json").read_text())["attributes"]
    for a in ATTRIBUTES:  # each reading names the other's crossings of the same walk
        assert meta["attributes"][a]["trajectory"]["crossing_peak_t"] == trajectory[a]["crossing_peak_t"]
        assert trajectory[a]["image"]["crossing_peak_t"] == meta["attributes"][a]["crossing_peak_t"]
    assert torch.allclose(per_image, matrix.before - probabilities, atol=1e-4)
    assert explanation.tensors["strips"].shape == (3, k + 1, *images.shape[1:])
    assert all((tmp_path / "out" / f).read_bytes()[:4] == b"\x89PNG" for f in ("dimensions.png", "attributes.png", "strips.png"))


def test_emergence_partial_regeneration_from_each_start_is_seeded_and_saved(setup, tmp_path):
    model, data, classifier, images = setup
    config = EmergenceExplainer.Config(sampler=DDIM_3, reference=4, partial_starts=2)
    run = lambda seed: EmergenceExplainer(config).explain(
        model, images, data=data, classifier=classifier, generator=torch.Generator().manual_seed(seed)
    )
    explanation, again, other = run(0), run(0), run(1)
    explanation.save(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())["partial"]
    walk = model.sampler("ddim", steps=3).timesteps()
    assert meta["starts"] == sorted([walk[0], walk[-1]]) and set(meta["attributes"]) == set(ATTRIBUTES)
    edited = {meta["attributes"][a]["dimension"] for a in ATTRIBUTES}
    assert explanation.tensors["partial_effect"].shape == (2, len(ATTRIBUTES))
    assert explanation.tensors["partial_strips"].shape == (2, 2 + len(edited), *images.shape[1:])
    assert all(v["latest_t"] in (None, *meta["starts"]) and len(v["effect"]) == 2 for v in meta["attributes"].values())
    assert torch.equal(explanation.tensors["partial_effect"], again.tensors["partial_effect"])  # the seed fixes the noise
    assert torch.equal(explanation.tensors["activation"], again.tensors["activation"])
    assert not torch.equal(explanation.tensors["partial_strips"], other.tensors["partial_strips"])
    assert all((tmp_path / "out" / f).read_bytes()[:4] == b"\x89PNG" for f in ("partial.png", "partial_strips.png"))


def test_emergence_without_a_classifier_on_another_conditioner(tmp_path):
    """Any conditioner with a vector (here DiffAE's), no classifier: dimension curves only."""
    model, data = tiny("diffae")
    images = torch.stack([data[i][0] for i in range(2)])
    explanation = EmergenceExplainer(EmergenceExplainer.Config(sampler=DDIM_2, reference=4, strip_dimensions=2)).explain(
        model, images, data=data
    )
    explanation.save(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert "attributes" not in meta and len(meta["dimensions"]) == model.conditioner.dim
    assert explanation.tensors["activation"].shape == (2, 2, model.conditioner.dim)
    assert explanation.tensors["strips"].shape[1] == model.conditioner.dim + 1


def test_partial_regeneration_without_a_classifier_is_one_line(setup):
    model, data, _, images = setup
    config = EmergenceExplainer.Config(sampler=DDIM_2, reference=4, partial_starts=2)
    with pytest.raises(ProtodiffError, match="--classifier"):
        EmergenceExplainer(config).explain(model, images, data=data)


def test_an_unknown_reading_is_refused():
    with pytest.raises(ValueError, match="against must be one of image, trajectory"):
        EmergenceExplainer.Config(against="noise")
