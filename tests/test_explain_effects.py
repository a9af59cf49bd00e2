"""``effects`` and ``shortcuts``: the effect matrix on a tiny untrained Patronus model, the coupling
rule on planted matrices, training-label correlation, and one-line errors for bad input
(``emergence``: tests/test_explain_emergence.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import Tensor

from protodiff.config import ComponentSpec
from protodiff.data.shapes import ATTRIBUTES, Shapes, ShortcutConfig
from protodiff.errors import ProtodiffError
from protodiff.explain.effects import EffectMatrix, EffectsExplainer, effect_matrix
from protodiff.explain.emergence import EmergenceExplainer
from protodiff.explain.shortcuts import ShortcutsExplainer, couplings, critical_value, detectable, label_correlation
from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig
from protodiff.model import ConditionedDiffusion

DDIM_2 = ComponentSpec("sampler", "ddim", raw={"steps": 2})


@pytest.fixture(scope="module")
def setup():
    from conftest import tiny_conditional_model

    model, data = tiny_conditional_model("patronus")
    classifier = AttributeClassifier.for_dataset(data, ClassifierConfig(widths=(4, 8))).eval()
    images = torch.stack([data[i][0] for i in range(3)])
    return model, data, classifier, images


def test_effect_matrix_covers_every_dimension_and_attribute_deterministically(setup):
    model, _data, classifier, images = setup
    sampler = model.sampler("ddim", steps=2)
    first = effect_matrix(model, images, classifier, sampler=sampler, chunk=5)
    again = effect_matrix(model, images, classifier, sampler=sampler, chunk=64)
    k = model.conditioner.dim
    assert first.effect.shape == first.consistency.shape == (k, len(ATTRIBUTES))
    assert first.dimensions == model.conditioner.names and first.attributes == list(ATTRIBUTES)
    assert torch.allclose(first.effect, again.effect, atol=1e-5)  # batching does not change the result
    assert ((first.consistency >= 0) & (first.consistency <= 1)).all()
    assert first.effect.abs().max() > 0


def test_effect_matrix_edits_as_the_edit_settings_say(setup):
    """Guidance amplifies every edit (and leaves the unedited reference alone); a partial start
    shares one noise between an image's edits, so the same generator gives the same matrix."""
    from protodiff.explain.edit import EditSettings

    model, _data, classifier, images = setup
    sampler = model.sampler("ddim", steps=2)
    plain = effect_matrix(model, images, classifier, sampler=sampler)
    guided = effect_matrix(model, images, classifier, sampler=sampler, settings=EditSettings(guidance=3.0))
    assert torch.allclose(plain.before, guided.before, atol=1e-6)
    assert not torch.allclose(plain.effect, guided.effect, atol=1e-4)
    partial = EditSettings(start=500)
    first = effect_matrix(
        model, images, classifier, sampler=sampler, settings=partial, generator=torch.Generator().manual_seed(1)
    )
    again = effect_matrix(
        model, images, classifier, sampler=sampler, settings=partial, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(first.effect, again.effect) and not torch.allclose(first.before, plain.before, atol=1e-4)


def test_effects_explainer_saves_matrix_suggestions_and_heat_map(setup, tmp_path):
    model, data, classifier, images = setup
    explainer = EffectsExplainer(EffectsExplainer.Config(sampler=DDIM_2))
    explainer.explain(model, images, classifier=classifier, data=data).save(tmp_path / "out")
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    effect = load_file(str(tmp_path / "out" / "tensors.safetensors"))["effect"]
    assert [s["dimension"] for s in meta["suggestions"]] == model.conditioner.names
    best = effect.argmax(dim=1)
    assert [s["attribute"] for s in meta["suggestions"]] == [ATTRIBUTES[int(a)] for a in best]
    assert (tmp_path / "out" / "effects.png").read_bytes()[:4] == b"\x89PNG"


def _matrix(change: Tensor) -> EffectMatrix:
    """An effect matrix of per-image changes (K, N, A) on attributes mark, tint, bg."""
    return EffectMatrix([f"proto_{j:02d}" for j in range(len(change))], ["mark", "tint", "bg"], change)


def _flips(n: int, *fractions: float) -> Tensor:
    """(n, len(fractions)) changes: attribute i turned on (1) in the first fractions[i] of the images."""
    return torch.stack([(torch.arange(n) < round(f * n)).float() for f in fractions], dim=1)


def test_effect_summaries_are_read_off_the_per_image_changes():
    change = torch.tensor([[[1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.5, 0.0]]])  # one dimension, 4 images
    matrix = EffectMatrix(["proto_00"], ["mark", "tint"], change)
    assert matrix.images == 4
    assert torch.allclose(matrix.effect, torch.tensor([[0.625, -0.25]]))
    assert torch.allclose(matrix.consistency, torch.tensor([[0.75, 0.25]]))
    assert torch.allclose(matrix.stderr, change.std(dim=1) / 2)
    assert torch.isnan(EffectMatrix(["proto_00"], ["mark", "tint"], change[:, :1]).stderr).all()


def test_a_coupling_the_images_support_ranks_first_and_alone_is_flagged():
    n = 128
    change = torch.stack(
        [
            _flips(n, 0.5, 0.25, 0.0),  # planted: turns mark and tint on together
            _flips(n, 0.5, 0.0, 0.0),  # one attribute only
            _flips(n, 0.08, 0.0, 0.06),  # a real but small coupling: listed, below the threshold
        ]
    )
    found = couplings(_matrix(change), threshold=0.1, correlation=torch.eye(3))
    assert found[0]["prototype"] == "proto_00" and found[0]["attributes"] == ["mark", "tint"]
    assert found[0]["effects"] == [0.5, 0.25] and found[0]["flagged"] and found[0]["score"] > 0
    assert found[0]["train_correlation"] == 0.0
    assert found[0]["replication"] == {"attribute": "tint", "dimensions": 1, "agreeing": 1}
    assert [c["flagged"] for c in found] == [True, False]
    assert [c["score"] for c in found] == sorted((c["score"] for c in found), reverse=True)


def test_a_coupling_the_other_dimensions_contradict_is_listed_not_flagged():
    """One dimension moving two attributes is entanglement, not a learnt dependency, when the other
    dimensions that move either attribute leave the other one alone."""
    n = 128
    change = torch.stack(
        [
            _flips(n, 0.5, 0.4, 0.0),  # mark and tint together
            _flips(n, 0.5, 0.0, 0.0),
            _flips(n, 0.4, 0.0, 0.0),  # mark alone, twice
            _flips(n, 0.0, 0.5, 0.0),
            _flips(n, 0.0, 0.4, 0.0),  # tint alone, twice
        ]
    )
    found = couplings(_matrix(change), threshold=0.1)
    assert found[0]["prototype"] == "proto_00" and found[0]["score"] > 0  # real on both legs...
    assert found[0]["replication"]["agreeing"] == 1 and found[0]["replication"]["dimensions"] == 3
    assert not any(c["flagged"] for c in found)  # ...but one of three ways of moving each


def test_a_dependency_every_dimension_shows_is_flagged_on_each_in_either_direction():
    n = 128
    opposite = -_flips(n, 0.0, 0.3, 0.0)  # the tint turned off where the mark is turned on
    change = torch.stack(
        [
            _flips(n, 0.5, 0.0, 0.0) + opposite,
            _flips(n, 0.4, 0.0, 0.0) + opposite,  # mark on, tint off
            _flips(n, 0.0, 0.0, 0.5),  # bg alone: it has nothing to do with the pair
            _flips(n, 0.1, 0.0, 0.4),  # a weak leg: listed below the threshold, not flagged
        ]
    )
    found = couplings(_matrix(change), threshold=0.2)
    flagged = [(c["prototype"], c["attributes"]) for c in found if c["flagged"]]
    assert flagged == [("proto_00", ["mark", "tint"]), ("proto_01", ["mark", "tint"])]
    assert found[0]["replication"] == {"attribute": "tint", "dimensions": 2, "agreeing": 2}  # mark: 2 of 3
    assert found[0]["effects"][1] < 0 < found[0]["effects"][0]
    assert [c["flagged"] for c in found] == sorted((c["flagged"] for c in found), reverse=True)  # flagged first


def test_large_effects_from_too_few_images_are_listed_not_flagged():
    change = torch.stack([_flips(8, 0.5, 0.375, 0.0), _flips(8, 0.0, 0.0, 0.0)])
    found = couplings(_matrix(change), threshold=0.1)
    assert [c["attributes"] for c in found] == [["mark", "tint"]]
    assert found[0]["score"] < 0 and not found[0]["flagged"]  # 3 of 8 images: not told from noise over 6 tests
    assert detectable(8, critical_value(8, 6, 0.05)) > 0.375


def test_noise_alone_flags_a_coupling_in_at_most_alpha_of_the_experiments():
    generator = torch.Generator().manual_seed(0)
    experiments, falsely_flagged, largest = 200, 0, []
    for _ in range(experiments):  # 8 dimensions x 3 attributes, 64 images, every true effect zero
        flips = torch.rand(8, 64, 3, generator=generator) < 0.3
        signs = torch.randint(0, 2, (8, 64, 3), generator=generator) * 2 - 1
        matrix = _matrix(flips * signs.float())
        largest.append(float(matrix.effect.abs().max()))
        falsely_flagged += any(c["flagged"] for c in couplings(matrix, threshold=0.05))
    assert sum(largest) / experiments > 0.1  # effects this large arise from noise alone...
    assert falsely_flagged <= 0.05 * experiments  # ...and are flagged at the family-wise rate at most


def test_critical_value_is_the_bonferroni_t_quantile():
    from scipy import stats

    assert critical_value(64, 256, 0.05) == pytest.approx(stats.t.ppf(1 - 0.05 / 512, 63))
    assert critical_value(1, 256, 0.05) == float("inf") and detectable(1, float("inf")) == 1.0
    q = critical_value(128, 256, 0.05)
    e = detectable(128, q)  # the smallest fraction of flipped images that is significant
    assert e == pytest.approx(q * (e * (1 - e) / 128) ** 0.5)


def test_label_correlation_matches_numpy_and_marks_constant_labels():
    labels = torch.tensor([[1, 1, 0, 1], [0, 0, 0, 1], [1, 1, 0, 0], [0, 1, 0, 1], [1, 0, 0, 0]]).float()
    r = label_correlation(labels)
    assert torch.allclose(
        r[[0, 1, 3]][:, [0, 1, 3]], torch.from_numpy(np.corrcoef(labels[:, [0, 1, 3]].T.numpy())).float(), atol=1e-6
    )
    assert torch.isnan(r[2]).all()


def test_planted_shapes_shortcut_shows_in_the_train_labels_only():
    planted = Shapes(Shapes.Config(num_train=400, num_test=400, shortcut=ShortcutConfig("red_square", "warm_cast")))
    a, b = ATTRIBUTES.index("red_square"), ATTRIBUTES.index("warm_cast")
    assert label_correlation(planted.open("train").attributes())[a, b] > 0.99
    assert abs(label_correlation(planted.open("test").attributes())[a, b]) < 0.2


def test_shortcuts_explainer_writes_the_documented_json(setup, tmp_path):
    model, data, classifier, images = setup
    train = data  # any split with the same attributes serves the label correlation here
    explainer = ShortcutsExplainer(ShortcutsExplainer.Config(sampler=DDIM_2, threshold=1e-4))
    with pytest.warns(UserWarning, match=r"^with 3 images only effects above 1.00 can be told from noise"):
        explainer.explain(model, images, classifier=classifier, data=data, train=train).save(tmp_path / "out")
    report = json.loads((tmp_path / "out" / "shortcuts.json").read_text())
    assert report["threshold"] == 1e-4 and report["alpha"] == 0.05 and report["images"] == 3
    assert report["couplings"] and report["detectable"] > 0.99
    first = report["couplings"][0]
    assert set(first) == {"prototype", "attributes", "effects", "score", "train_correlation", "replication", "flagged"}
    assert first["prototype"] in model.conditioner.names and len(first["attributes"]) == 2
    change = load_file(str(tmp_path / "out" / "tensors.safetensors"))["change"]
    assert change.shape == (model.conditioner.dim, 3, len(ATTRIBUTES))  # per image, for any other rule
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())  # what `protodiff names --suggest` reads
    assert [s["dimension"] for s in meta["suggestions"]] == model.conditioner.names


def test_a_classifier_for_other_attributes_is_one_line(setup):
    model, data, _, images = setup
    other = AttributeClassifier(["smiling", "blond"], 3, 16, ClassifierConfig(widths=(4,)))
    with pytest.raises(
        ProtodiffError, match=r"^the classifier judges \['smiling', 'blond'\], the data has .*protodiff classifier train\)$"
    ):
        EffectsExplainer(EffectsExplainer.Config(sampler=DDIM_2)).explain(model, images, classifier=other, data=data)


def test_a_wide_latent_heat_map_shows_its_strongest_dimensions(tmp_path):
    from protodiff.explain.effects import MAX_ROWS, plot_effects, strongest_rows

    change = torch.zeros(512, 2, 3)
    change[[7, 300], :, 1] = 0.8  # two dimensions that move an attribute, 510 that do nothing
    matrix = EffectMatrix([f"z_{j}" for j in range(512)], ["a", "b", "c"], change)
    rows = strongest_rows(matrix.effect)
    assert len(rows) == MAX_ROWS and {7, 300} <= set(rows) and rows == sorted(rows)
    assert strongest_rows(matrix.effect[:10]) == list(range(10))
    plot_effects(matrix, tmp_path / "effects.png")
    from PIL import Image

    assert Image.open(tmp_path / "effects.png").height < 0.3 * 512 * 120  # not 512 rows tall


def test_success_counts_only_images_that_lacked_the_attribute_and_leakage_the_others_flipped():
    before = torch.tensor([[0.1, 0.9], [0.2, 0.1], [0.9, 0.2], [0.3, 0.4]])  # 3 images lack "mark"
    change = torch.zeros(1, 4, 2)
    change[0, 0, 0] = 0.8  # image 0 gains the mark, and keeps its tint
    change[0, 1, 0], change[0, 1, 1] = 0.7, 0.6  # image 1 gains the mark, and the tint with it
    change[0, 2, 0] = -0.8  # image 2 had the mark: not counted for success
    matrix = EffectMatrix(["proto_00"], ["mark", "tint"], change, before)
    success, leakage = matrix.success_and_leakage()
    assert success[0, 0].item() == pytest.approx(2 / 3)  # images 0 and 1 of the 3 that lacked it
    assert leakage[0, 0].item() == pytest.approx(1 / 3)  # the tint flipped on one of the three
    record = matrix.to_json()
    assert record["lacking"] == [3, 3] and record["success"][0][0] == pytest.approx(0.6667, abs=1e-4)
    with pytest.raises(ValueError, match="before"):
        EffectMatrix(["proto_00"], ["mark", "tint"], change).success_and_leakage()


def test_the_largest_flip_is_the_other_attribute_that_flips_most_often():
    """Four images lack the mark; raising the dimension flips the tint on two of them and the
    background on none: leakage is the mean over the two others (0.25), the largest flip 0.5."""
    before = torch.tensor([[0.1, 0.1, 0.1]] * 4 + [[0.9, 0.1, 0.1]])  # images 0-3 lack the mark, image 4 has it
    change = torch.zeros(1, 5, 3)
    change[0, :4, 0] = 0.8  # every image lacking the mark gains it
    change[0, :2, 1] = 0.8  # the tint turns on in two of them
    change[0, 4, 2] = 0.8  # the background turns on in the image that had the mark: not counted
    matrix = EffectMatrix(["proto_00"], ["mark", "tint", "background"], change, before)
    success, leakage = matrix.success_and_leakage()
    largest = matrix.largest_flip()
    assert (success[0, 0].item(), leakage[0, 0].item(), largest[0, 0].item()) == (1.0, 0.25, 0.5)
    # Every image lacks the tint: the edit adds it to two of five, and flips the mark on four of
    # them and the background on one.
    assert success[0, 1].item() == pytest.approx(0.4) and largest[0, 1].item() == pytest.approx(0.8)
    assert matrix.to_json()["largest_flip"][0][0] == 0.5


def test_every_edit_defaults_to_one_guidance_and_shortcuts_to_the_measured_one():
    """model.edit, EditSettings and every explainer that edits share EDIT_GUIDANCE; the shortcut
    ranking keeps 1, at which its planted-shortcut runs are measured."""
    import inspect

    from protodiff.explain.edit import EditExplainer, EditSettings
    from protodiff.model import EDIT_GUIDANCE
    from protodiff_diffae.editing import AttributeEditExplainer
    from protodiff_patronus.explainers import PrototypesExplainer

    assert inspect.signature(ConditionedDiffusion.edit).parameters["guidance"].default == EDIT_GUIDANCE
    for config in (EditSettings, EditExplainer.Config, EffectsExplainer.Config, EmergenceExplainer.Config,
                   PrototypesExplainer.Config, AttributeEditExplainer.Config):  # fmt: skip
        assert config.guidance == EDIT_GUIDANCE, config
    assert ShortcutsExplainer.Config.guidance == 1.0
    # Edits hold the other dimensions unless asked; the shortcut ranking always does by default.
    assert EditSettings.follow == ShortcutsExplainer.Config.follow == "none"
