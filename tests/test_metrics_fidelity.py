"""FID/KID through torch-fidelity: the analytic Gaussian case, extractor resolution and labels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from safetensors.torch import save_file

from protodiff.errors import ProtodiffError
from protodiff.metrics.fidelity.feature_extractors import INCEPTION, inception_file, inception_url, resolve_extractor
from protodiff.metrics.fidelity.images import to_uint8_rgb
from protodiff.metrics.fidelity.metric_fid_kid import fidelity_scores


def _gaussian(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> torch.Tensor:
    """``n`` points whose sample mean and (ddof=1) covariance are exactly ``mean`` and ``cov``."""
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance = I
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def _frechet(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> float:
    root = scipy.linalg.sqrtm(scipy.linalg.sqrtm(c1) @ c2 @ scipy.linalg.sqrtm(c1)).real
    return float(((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * root))


@pytest.fixture(autouse=True)
def _hub_dir(tmp_path, monkeypatch):
    """A private, empty torch hub cache: no test may find (or fetch) real Inception weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


def test_known_gaussians_give_the_analytic_frechet_distance() -> None:
    m1, c1 = np.zeros(3), np.diag([1.0, 2.0, 3.0])
    m2 = np.array([1.0, -1.0, 0.5])
    rotation = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    c2 = rotation @ np.diag([4.0, 1.0, 0.25]) @ rotation.T  # does not commute with c1
    x1, x2 = _gaussian(2000, m1, c1, seed=1), _gaussian(3000, m2, c2, seed=2)
    identity = resolve_extractor("identity")

    fd = fidelity_scores(x1, x2, identity, fid=True)["frechet_inception_distance"]
    assert fd == pytest.approx(_frechet(m1, c1, m2, c2), rel=1e-6)
    # Diagonal covariances: |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2 in closed form.
    c3 = np.diag([4.0, 1.0, 0.25])
    closed = 2.25 + sum((np.sqrt(a) - np.sqrt(b)) ** 2 for a, b in zip([1.0, 2.0, 3.0], [4.0, 1.0, 0.25]))
    fd_diag = fidelity_scores(x1, _gaussian(3000, m2, c3, seed=3), identity, fid=True)["frechet_inception_distance"]
    assert fd_diag == pytest.approx(closed, rel=1e-6)
    assert fidelity_scores(x1, x1, identity, fid=True)["frechet_inception_distance"] == pytest.approx(0.0, abs=1e-9)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_two() -> None:
    identity = resolve_extractor("identity")
    a = _gaussian(400, np.zeros(4), np.eye(4), seed=4)
    b = _gaussian(400, np.zeros(4), np.eye(4), seed=5)
    c = _gaussian(400, np.full(4, 2.0), np.eye(4), seed=6)
    same = fidelity_scores(a, b, identity, kid=True, kid_subsets=20)
    different = fidelity_scores(a, c, identity, kid=True, kid_subsets=20)
    assert abs(same["kernel_inception_distance_mean"]) < 0.05 * different["kernel_inception_distance_mean"]


def test_labels_never_call_another_feature_space_fid(tmp_path) -> None:
    inception = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(1)}, inception)
    assert resolve_extractor(INCEPTION, inception).label("fid") == "FID"
    assert resolve_extractor(INCEPTION, inception).label("kid") == "KID"
    assert resolve_extractor("identity").label("fid") == "FD_identity"
    assert resolve_extractor("timm-resnet18", tmp_path).label("kid") == "KD_timm-resnet18"


def test_missing_inception_weights_name_the_file_url_and_directory(_hub_dir) -> None:
    with pytest.raises(ProtodiffError) as info:
        resolve_extractor()
    message = str(info.value)
    assert "\n" not in message
    assert inception_file() == "weights-inception-2015-12-05-6726825d.pth"
    for needed in (inception_file(), inception_url(), str(_hub_dir / "checkpoints"), "--inception-weights"):
        assert needed in message


def test_inception_weights_are_found_in_the_hub_cache_or_given_path(_hub_dir, tmp_path) -> None:
    cached = _hub_dir / "checkpoints" / inception_file()
    cached.parent.mkdir(parents=True)
    torch.save({"fc.weight": torch.zeros(1)}, cached)
    assert resolve_extractor().weights == str(cached)
    given = tmp_path / "inception.pth"
    torch.save({"fc.weight": torch.zeros(1)}, given)
    assert resolve_extractor(INCEPTION, given).describe() == {"name": INCEPTION, "layer": "2048", "weights": str(given)}
    with pytest.raises(ProtodiffError, match="not found"):
        resolve_extractor(INCEPTION, tmp_path / "absent.pth")


class _NotWeights:
    pass


def test_a_weights_file_that_could_run_code_is_refused(tmp_path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"payload": _NotWeights()}, path)
    with pytest.raises(ProtodiffError, match="not a plain PyTorch state dict"):
        resolve_extractor(INCEPTION, path)


def test_timm_backbone_from_a_local_file(tmp_path) -> None:
    import timm

    net = timm.create_model("test_resnet")
    weights = tmp_path / "test_resnet.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    extractor = resolve_extractor("timm-test_resnet", weights)
    assert extractor.label("fid") == "FD_timm-test_resnet"
    images = torch.randint(0, 256, (12, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    other = images // 2
    assert fidelity_scores(images, images, extractor, fid=True)["frechet_inception_distance"] == pytest.approx(0, abs=1e-6)
    assert fidelity_scores(images, other, extractor, fid=True)["frechet_inception_distance"] > 1e-6


def test_extractor_errors_are_one_line(tmp_path) -> None:
    for name, weights, match in [
        ("vgg-nonsense", None, "unknown feature_extractor 'vgg-nonsense'"),
        ("timm-resnet18", None, "needs --extractor-weights"),
        ("timm-no_such_model", tmp_path, "timm has no model"),
        ("attribute-classifier", tmp_path / "absent", "not found"),
        ("identity", tmp_path, "has no weights"),
    ]:
        with pytest.raises(ProtodiffError, match=match):
            resolve_extractor(name, weights)


def test_wrong_weights_for_an_extractor_are_a_protodiff_error(tmp_path) -> None:
    weights = tmp_path / "other.safetensors"
    save_file({"unrelated": torch.zeros(2)}, str(weights))
    extractor = resolve_extractor("timm-test_resnet", weights)
    images = torch.zeros(4, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ProtodiffError, match="not the weights of timm model 'test_resnet'"):
        fidelity_scores(images, images, extractor, fid=True)


def test_wrong_inception_weights_are_a_protodiff_error(tmp_path) -> None:
    weights = tmp_path / "not-inception.pth"
    torch.save({"fc.weight": torch.zeros(1)}, weights)
    images = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    with pytest.raises(ProtodiffError, match="not the weights of feature extractor 'inception-v3-compat'"):
        fidelity_scores(images, images, resolve_extractor(INCEPTION, weights), fid=True)


def test_to_uint8_rgb() -> None:
    grey = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 2, 2)
    out = to_uint8_rgb(grey)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 2, 2)
    assert out[0, 0].flatten().tolist() == [0, 128, 255, 255]
    assert torch.equal(out[0, 0], out[0, 2])


def test_attribute_classifier_features_as_an_extractor(tmp_path) -> None:
    from protodiff.metrics.attribute_classifier import AttributeClassifier, ClassifierConfig

    AttributeClassifier(["a", "b"], 3, 16, ClassifierConfig(widths=(8, 16))).save(tmp_path / "clf")
    extractor = resolve_extractor("attribute-classifier", tmp_path / "clf")
    assert extractor.label("fid") == "FD_attribute-classifier"
    images = torch.randint(0, 256, (10, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert fidelity_scores(images, images, extractor, fid=True)["frechet_inception_distance"] == pytest.approx(0, abs=1e-6)
    assert fidelity_scores(images, 255 - images, extractor, fid=True)["frechet_inception_distance"] > 1e-6


@pytest.mark.parametrize("size, refused", [(64, False), (256, True)])
def test_pixel_features_too_wide_for_a_covariance_are_refused_before_anything_is_generated(size, refused) -> None:
    """FID in pixel space at 256 px would hold a 196,608-d covariance (about 288 GiB)."""
    from types import SimpleNamespace

    from protodiff.metrics.fidelity.metric_fid_kid import FID

    metric = FID(FID.Config(extractor="identity"))
    model = SimpleNamespace(in_channels=3, image_size=size, is_conditional=False)
    if refused:
        with pytest.raises(ProtodiffError, match=r"identity features of 3x256x256 images are 196,608-d .* 288 GiB"):
            metric.check(model, None)
    else:
        metric.check(model, None)
