"""Conformance checks: does a registered component honour its extension point's contract?

protodiff's own test suite runs :func:`check_component` over every registry entry, so a
component is tested the moment it registers. Plugin authors call it from their own tests::

    from protodiff.testing import check_component

    def test_my_conditioner_conforms():
        check_component("conditioner", "my-conditioner")

Each check builds the component from its ``test`` preset when it has one (the smallest
configuration that still exercises it), else from its defaults, runs it on small random inputs
and asserts the shapes, value ranges and gradient flow the contract promises.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from protodiff.config import ComponentSpec
from protodiff.diffusion.schedule import NoiseSchedule
from protodiff.errors import DataError, ProtodiffError
from protodiff._registry.manager import registries

IMAGE_SIZE = 32
BATCH = 2


class ConformanceSkipped(Exception):
    """The component cannot be checked here (e.g. a dataset whose files are not present)."""


def build(kind: str, name: str, **context: Any) -> Any:
    """Instantiate a registered component from its ``test`` preset (if any) with ``context``."""
    cls = getattr(registries(), kind).get(name)
    preset = "test" if "test" in cls.presets else None
    return ComponentSpec(kind, name, preset).build(**context)


def _images(channels: int = 3, size: int = IMAGE_SIZE) -> torch.Tensor:
    return torch.rand(BATCH, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _assert_grads_reach(module: torch.nn.Module, what: str) -> None:
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    assert not trainable or len(missing) < len(trainable), f"{what}: no gradient reached any parameter"


def check_encoder(name: str) -> None:
    encoder = build("encoder", name, in_channels=3, image_size=IMAGE_SIZE)
    z = encoder(_images())
    assert z.dim() == 4 and z.shape[:2] == (BATCH, encoder.out_channels), f"encoder {name}: z has shape {tuple(z.shape)}"
    height, width = z.shape[-2:]
    for i, j in ((0, 0), (height - 1, width - 1)):
        box = encoder.receptive_field(i, j)
        assert 0 <= box.top < box.bottom <= IMAGE_SIZE and 0 <= box.left < box.right <= IMAGE_SIZE, f"{name}: {box}"
    z.square().mean().backward()
    _assert_grads_reach(encoder, f"encoder {name}")


def check_prototype_layer(name: str) -> None:
    layer = build("prototype_layer", name, feature_dim=16)
    z = torch.randn(BATCH, 16, 5, 4, requires_grad=True)
    s, maps = layer(z)
    assert s.shape == (BATCH, layer.num_prototypes), f"{name}: s has shape {tuple(s.shape)}"
    assert maps.shape == (BATCH, layer.num_prototypes, 5, 4), f"{name}: maps have shape {tuple(maps.shape)}"
    assert torch.isfinite(s).all() and torch.isfinite(maps).all(), f"{name}: non-finite output"
    s.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all(), f"{name}: no finite gradient to the features"


def check_conditioner(name: str) -> None:
    conditioner = build("conditioner", name, in_channels=3, image_size=IMAGE_SIZE)
    condition = conditioner.encode(_images())
    assert condition.vector.shape == (BATCH, conditioner.dim), f"{name}: vector has shape {tuple(condition.vector.shape)}"
    assert len(condition.names) == conditioner.dim == len(conditioner.names), f"{name}: one name per dimension"
    embedding = conditioner.embed(condition.vector)
    if conditioner.embed_dim == 0:
        assert embedding is None, f"{name}: embed_dim is 0 but embed returned a tensor"
        return
    assert embedding.shape == (BATCH, conditioner.embed_dim), f"{name}: embedding has shape {tuple(embedding.shape)}"
    loss = embedding.square().mean() + (condition.aux_loss if condition.aux_loss is not None else 0)
    loss.backward()
    _assert_grads_reach(conditioner, f"conditioner {name}")


def check_denoiser(name: str) -> None:
    for cond_dim in (0, 8):
        denoiser = build("denoiser", name, in_channels=3, cond_dim=cond_dim, cond_mode="add")
        x = _images()
        cond = torch.randn(BATCH, cond_dim) if cond_dim else None
        out = denoiser(x, torch.tensor([0, 999]), cond)
        assert out.shape == x.shape, f"denoiser {name}: output {tuple(out.shape)} for input {tuple(x.shape)}"
        out.square().mean().backward()
        _assert_grads_reach(denoiser, f"denoiser {name}")


def gaussian_eps_oracle(schedule: NoiseSchedule, mean: float, std: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """E[eps | x_t] for data ~ N(mean, std^2) per pixel: the exact minimiser of the training loss.

    With it a correct sampler reproduces that distribution, and the probability-flow ODE has a
    closed-form solution (the standardised (x_t - sqrt(a) mean) / sqrt(a std^2 + 1 - a) is constant
    along it), so a solver's error can be measured exactly.
    """

    def eps_fn(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = schedule.alpha_bar(t, x_t)
        return (1 - a).sqrt() * (x_t - a.sqrt() * mean) / (a * std**2 + 1 - a)

    return eps_fn


def check_sampler(name: str) -> None:
    schedule = NoiseSchedule()
    sampler = build("sampler", name, schedule=schedule)
    steps = sampler.timesteps()
    assert steps == sorted(steps, reverse=True) and len(set(steps)) == len(steps), f"{name}: timesteps must descend"
    assert 0 <= steps[-1] and steps[0] < schedule.num_timesteps, f"{name}: timesteps outside 0..T-1"
    target = torch.full((BATCH, 1, 4, 4), 0.5)

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # data is a single point
        return schedule.predict_eps(x_t, t, target)

    seen: list[int] = []
    x0 = sampler.sample(oracle, torch.randn(BATCH, 1, 4, 4), generator=torch.Generator().manual_seed(0),
                        callback=lambda info: seen.append(info.t))
    assert seen == steps, f"{name}: callback saw {len(seen)} steps of {len(steps)}"
    assert torch.allclose(x0, target, atol=1e-2), f"{name}: an exact eps predictor must recover the data point"
    noise = torch.randn(BATCH, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    runs = [sampler.sample(oracle, noise, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    assert torch.equal(*runs), f"{name}: a walk must not depend on the walks before it (same seed, same numbers)"
    assert sampler.invert(oracle, target).shape == target.shape


def check_latent_prior(name: str) -> None:
    prior = build("latent_prior", name, dim=4)
    vectors = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)) * 0.5 + 1.0
    history = prior.fit(vectors, generator=torch.Generator().manual_seed(0))
    assert history and all(math.isfinite(v) for v in history), f"{name}: fit must return a finite loss history"
    samples = prior.sample(8, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (8, 4) and torch.isfinite(samples).all(), f"{name}: sample gave {tuple(samples.shape)}"


def check_dataset(name: str) -> None:
    source = build("dataset", name)
    for split in source.splits:
        try:
            data = source.open(split)
        except DataError as exc:
            raise ConformanceSkipped(f"dataset {name} needs local files: {exc}") from None
        assert len(data) > 0, f"{name}/{split}: empty"
        image, attrs = data[0]
        assert image.shape == (source.channels, source.config.image_size, source.config.image_size), f"{name}: {tuple(image.shape)}"
        assert image.min() >= -1 and image.max() <= 1, f"{name}: images must lie in [-1, 1]"
        assert attrs.shape == (len(data.attribute_names),), f"{name}: one attribute per name"
        labels = data.attributes()
        assert labels.shape == (len(data), len(data.attribute_names)) and torch.equal(labels[0], attrs)


def check_feature_extractor(name: str) -> None:
    cls = registries().feature_extractor.get(name)
    try:
        extractor = cls(name, None)
    except ProtodiffError as exc:  # weights are local files the user gives; none are here
        raise ConformanceSkipped(f"feature extractor {name} needs local weights: {exc}") from None
    assert extractor.label("fid") in ("FID", f"FD_{name}") and extractor.label("kid") in ("KID", f"KD_{name}")
    kwargs = extractor.calculate_metrics_kwargs()
    assert kwargs["feature_layer_fid"] == extractor.layer, f"{name}: distances must use the extractor's layer"


def check_constructible(kind: str) -> Callable[[str], None]:
    def check(name: str) -> None:
        build(kind, name)

    return check


CHECKS: dict[str, Callable[[str], None]] = {
    "encoder": check_encoder,
    "prototype_layer": check_prototype_layer,
    "conditioner": check_conditioner,
    "denoiser": check_denoiser,
    "sampler": check_sampler,
    "latent_prior": check_latent_prior,
    "dataset": check_dataset,
    "metric": check_constructible("metric"),
    "feature_extractor": check_feature_extractor,
    "explainer": check_constructible("explainer"),
}


def check_component(kind: str, name: str) -> None:
    """Assert that registry entry ``kind``/``name`` honours its contract (raises AssertionError)."""
    CHECKS[kind](name)


def registered_components() -> list[tuple[str, str]]:
    """Every (kind, name) with a conformance check, families excluded (their members are open-ended)."""
    return [
        (kind, entry.name)
        for kind, registry in registries().all().items()
        if kind in CHECKS
        for entry in registry.entries()
        if not entry.family
    ]
