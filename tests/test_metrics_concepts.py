"""dimension-auroc and reconstruction-agreement on cases whose answer is known by construction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from protodiff.config import parse
from protodiff.contracts.conditioner import Condition
from protodiff.contracts.metric import EvalContext
from protodiff.data.shapes import ATTRIBUTES, Shapes
from protodiff.diffusion import NoiseSchedule
from protodiff.metrics.concepts import DimensionAUROC, ReconstructionAgreement
from protodiff.model import ConditionedDiffusion


@pytest.fixture
def shapes_source():
    return Shapes(parse(Shapes.Config, {"image_size": 16, "num_train": 400, "num_test": 120}))


def test_a_brightness_dimension_is_read_as_the_dark_background(toy_conditioner, tiny_config, shapes_source):
    model = ConditionedDiffusion.from_experiment(tiny_config("model.conditioner.name=channel-means")).eval()
    context = EvalContext(shapes_source, "test", model.device)
    result = DimensionAUROC(DimensionAUROC.Config()).compute(model, shapes_source.open("test"), context)
    assert result["dimensions"] == ["dim_00", "dim_01", "dim_02"] and result["attributes"] == list(ATTRIBUTES)
    dark = result["per_attribute"]["dark_bg"]
    assert dark["auroc"] < 0.05  # a dark image has low mean colour in every channel
    red_row = result["auroc"][ATTRIBUTES.index("warm_cast")]
    assert red_row[2] < 0.5 < red_row[0]  # a warm cast raises red and lowers blue


class Oracle:
    """A stand-in model that regenerates exactly the image whose condition it is given."""

    is_conditional = True
    device = torch.device("cpu")

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.keys = images.flatten(1)
        self.schedule = NoiseSchedule()
        self.conditioner = type("C", (), {"dim": self.keys.shape[1], "names": []})()

    def encode(self, x0: torch.Tensor) -> Condition:
        return Condition(x0.flatten(1), [])

    def noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, *self.images.shape[1:], generator=generator)

    def sample(self, *, condition: torch.Tensor, x_T: torch.Tensor, sampler) -> torch.Tensor:
        index = torch.cdist(condition, self.keys).argmin(dim=1)
        return self.images[index]


@pytest.mark.slow
def test_an_oracle_agrees_on_every_attribute_and_shuffled_conditions_do_not(shapes_source):
    test = shapes_source.open("test")
    oracle = Oracle(torch.stack([test[i][0] for i in range(len(test))]))
    metric = ReconstructionAgreement(
        parse(ReconstructionAgreement.Config, {"num_images": 120, "classifier_steps": 300, "batch_size": 40})
    )
    result = metric.compute(oracle, test, EvalContext(shapes_source, "test", oracle.device, seed=0))
    per = result["per_attribute"]
    assert result["mean"] == 1.0
    assert all(v["agreement"] == 1.0 for v in per.values())
    assert 0.3 < result["chance_mean"] < 0.7  # independent attributes at frequency 1/2
    assert min(v["judge_accuracy"] for v in per.values()) > 0.85


def test_inversion_error_is_small_for_an_exact_denoiser(toy_conditioner, tiny_config, shapes_source):
    """With a denoiser that knows the data is one image, x0_hat is that image at every step, so
    invert-then-regenerate must return it at any number of steps."""
    from protodiff.metrics.inversion import InversionError

    model = ConditionedDiffusion.from_experiment(tiny_config("model.conditioner.name=channel-means")).eval()
    test = shapes_source.open("test")
    target = test[0][0]
    model.denoiser.forward = lambda x_t, t, emb: model.schedule.predict_eps(x_t, t, target.expand_as(x_t))
    single = test.subset([0])
    metric = InversionError(parse(InversionError.Config, {"num_images": 1, "steps": [10, 100]}))
    result = metric.compute(model, single, EvalContext(shapes_source, "test", model.device))
    for steps in ("10", "100"):
        assert result["by_steps"][steps]["mean_abs_error"] < 1e-4
        assert result["by_steps"][steps]["psnr_db"] > 60


def test_auroc_standard_error_matches_a_bootstrap():
    """Hanley & McNeil's formula against the spread of AUROCs over resampled scores."""
    from sklearn.metrics import roc_auc_score

    from protodiff.metrics.concepts import auroc_stderr

    rng = np.random.default_rng(0)
    y = np.r_[np.ones(200), np.zeros(300)]
    scores = rng.normal(0, 1, 500) + 1.2 * y
    auc = roc_auc_score(y, scores)
    boot = [roc_auc_score(y[i], scores[i]) for i in (rng.integers(0, 500, 500) for _ in range(400))]
    assert auroc_stderr(auc, 200, 300) == pytest.approx(np.std(boot), rel=0.2)
    assert auroc_stderr(1 - auc, 200, 300) == pytest.approx(auroc_stderr(auc, 200, 300))  # a falling dimension alike
