"""Conformance checks: does a registered component honour its kind's contract?

protodiff's own test suite runs :func:`check_component` over every registry entry, so a
component is tested the moment it registers. Plugin authors call it from their own tests::

    from protodiff.testing import check_component

    def test_my_conditioner_conforms():
        check_component("conditioner", "my-conditioner")

Each check builds the component from its ``test`` preset when it has one (the smallest
configuration that still exercises it), else from its defaults, runs it on small random inputs
and checks the shapes, value ranges and gradient flow the contract promises; every other preset
of the component must parse. A failure raises :class:`ConformanceError` (an AssertionError, raised
explicitly, so the checks hold under ``python -O`` too). The check of each kind is the one the
kind was added with (``registry.add_kind(kind, contract, check=...)``): a plugin that adds a kind
brings its check, as the Patronus plugin does for its encoders and prototype layers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from protodiff._registry.manager import registries
from protodiff.config import ComponentSpec, parse, read_yaml
from protodiff.diffusion.schedule import NoiseSchedule
from protodiff.errors import DataError, ProtodiffError

IMAGE_SIZE = 32
BATCH = 2


class ConformanceError(AssertionError):
    """A component that breaks its kind's contract; the message names it and what is wrong."""


class ConformanceSkipped(Exception):
    """The component cannot be checked here (e.g. a dataset whose files are not present)."""


def require(condition: object, message: str) -> None:
    """Raise :class:`ConformanceError` with ``message`` unless ``condition`` holds (an assert that
    ``python -O`` keeps)."""
    if not condition:
        raise ConformanceError(message)


def build(kind: str, name: str, **context: Any) -> Any:
    """Instantiate a registered component from its ``test`` preset (if any) with ``context``."""
    preset = "test" if "test" in registries().kind(kind).presets(name) else None
    return ComponentSpec(kind, name, preset).build(**context)


def images(channels: int = 3, size: int = IMAGE_SIZE) -> torch.Tensor:
    """A small random batch in [-1, 1], the same every call."""
    return torch.rand(BATCH, channels, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1


def require_grads_reach(module: torch.nn.Module, what: str) -> None:
    """Some trainable parameter of ``module`` received a gradient (after a backward pass)."""
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    missing = [n for n, p in module.named_parameters() if p.requires_grad and p.grad is None]
    require(not trainable or len(missing) < len(trainable), f"{what}: no gradient reached any parameter")


def check_conditioner(name: str) -> None:
    """``dim``, ``embed_dim``, one name per dimension, the condition's shapes (``vector`` (B, K),
    ``maps`` (B, K, H, W) when given), a registered ``preferred_mode`` and ``default_prior``, and
    gradients from the embedding (plus ``aux_loss``) to the parameters."""
    conditioner = build("conditioner", name, in_channels=3, image_size=IMAGE_SIZE)
    require(
        conditioner.preferred_mode in registries().cond_mode,
        f"conditioner {name}: preferred_mode {conditioner.preferred_mode!r} is not a registered cond_mode",
    )
    if conditioner.default_prior is not None:
        require(
            conditioner.default_prior in registries().latent_prior,
            f"conditioner {name}: default_prior {conditioner.default_prior!r} is not a registered latent_prior",
        )
    condition = conditioner.encode(images())
    k = conditioner.dim
    require(
        condition.vector.shape == (BATCH, k),
        f"conditioner {name}: vector has shape {tuple(condition.vector.shape)}, expected ({BATCH}, {k})",
    )
    require(len(condition.names) == k == len(conditioner.names), f"conditioner {name}: one name per dimension")
    if condition.maps is not None:
        shape = tuple(condition.maps.shape)
        require(
            len(shape) == 4 and shape[:2] == (BATCH, k),
            f"conditioner {name}: maps have shape {shape}, expected (B, K, H, W) = ({BATCH}, {k}, H, W): one map per dimension",
        )
    embedding = conditioner.embed(condition.vector)
    if conditioner.embed_dim == 0:
        require(embedding is None, f"conditioner {name}: embed_dim is 0 but embed returned a tensor")
        return
    require(
        embedding is not None and embedding.shape == (BATCH, conditioner.embed_dim),
        f"conditioner {name}: embedding has shape {None if embedding is None else tuple(embedding.shape)}, "
        f"expected ({BATCH}, {conditioner.embed_dim})",
    )
    loss = embedding.square().mean() + (condition.aux_loss if condition.aux_loss is not None else 0)
    loss.backward()
    require_grads_reach(conditioner, f"conditioner {name}")


def check_denoiser(name: str) -> None:
    """The prediction has the input's shape, unconditional and conditioned in every registered mode."""
    for cond_dim, mode in [(0, "add"), *((8, mode) for mode in registries().cond_mode.names())]:
        denoiser = build("denoiser", name, in_channels=3, cond_dim=cond_dim, cond_mode=mode)
        x = images()
        cond = torch.randn(BATCH, cond_dim) if cond_dim else None
        out = denoiser(x, torch.tensor([0, 999]), cond)
        require(out.shape == x.shape, f"denoiser {name} ({mode}): output {tuple(out.shape)} for input {tuple(x.shape)}")
        out.square().mean().backward()
        require_grads_reach(denoiser, f"denoiser {name} ({mode})")


def check_cond_mode(name: str) -> None:
    """``apply`` keeps the hidden state's shape, with or without time and condition, and passes
    gradients to the condition."""
    mode = registries().cond_mode.get(name)
    channels = 8
    require(mode.time_width >= 1 and mode.cond_width >= 1, f"cond_mode {name}: widths must be positive")
    norm = torch.nn.GroupNorm(4, channels)
    h = torch.randn(BATCH, channels, 4, 4)
    t = torch.randn(BATCH, mode.time_width * channels, 1, 1)
    c = torch.randn(BATCH, mode.cond_width * channels, 1, 1, requires_grad=True)
    for given_t, given_c in ((None, None), (t, None), (None, c), (t, c)):
        out = mode.apply(h, given_t, given_c, norm)
        require(
            out.shape == h.shape and torch.isfinite(out).all(),
            f"cond_mode {name}: output {tuple(out.shape)} for {tuple(h.shape)}",
        )
    out.square().sum().backward()
    require(c.grad is not None and bool(c.grad.abs().sum() > 0), f"cond_mode {name}: no gradient reaches the condition")


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
    require(steps == sorted(steps, reverse=True) and len(set(steps)) == len(steps), f"{name}: timesteps must descend")
    require(steps[-1] >= 0 and steps[0] < schedule.num_timesteps, f"{name}: timesteps outside 0..T-1")
    target = torch.full((BATCH, 1, 4, 4), 0.5)

    def oracle(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # data is a single point
        return schedule.predict_eps(x_t, t, target)

    seen: list[int] = []
    x0 = sampler.sample(
        oracle, torch.randn(BATCH, 1, 4, 4), generator=torch.Generator().manual_seed(0), callback=lambda info: seen.append(info.t)
    )
    require(seen == steps, f"{name}: callback saw {len(seen)} steps of {len(steps)}")
    require(torch.allclose(x0, target, atol=1e-2), f"{name}: an exact eps predictor must recover the data point")
    noise = torch.randn(BATCH, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    runs = [sampler.sample(oracle, noise, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    require(torch.equal(*runs), f"{name}: a walk must not depend on the walks before it (same seed, same numbers)")
    require(sampler.invert(oracle, target).shape == target.shape, f"{name}: invert must return x_T of the input's shape")


def check_latent_prior(name: str) -> None:
    prior = build("latent_prior", name, dim=4)
    vectors = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)) * 0.5 + 1.0
    history = prior.fit(vectors, generator=torch.Generator().manual_seed(0))
    require(history and all(math.isfinite(v) for v in history), f"{name}: fit must return a finite loss history")
    samples = prior.sample(8, generator=torch.Generator().manual_seed(0))
    require(samples.shape == (8, 4) and torch.isfinite(samples).all(), f"{name}: sample gave {tuple(samples.shape)}")


def check_dataset(name: str) -> None:
    source = build("dataset", name)
    for split in source.splits:
        try:
            data = source.open(split)
        except DataError as exc:
            raise ConformanceSkipped(f"dataset {name} needs local files: {exc}") from None
        require(len(data) > 0, f"{name}/{split}: empty")
        image, attrs = data[0]
        require(
            image.shape == (source.channels, source.config.image_size, source.config.image_size), f"{name}: {tuple(image.shape)}"
        )
        require(image.min() >= -1 and image.max() <= 1, f"{name}: images must lie in [-1, 1]")
        require(attrs.shape == (len(data.attribute_names),), f"{name}: one attribute per name")
        labels = data.attributes()
        require(
            labels.shape == (len(data), len(data.attribute_names)) and torch.equal(labels[0], attrs),
            f"{name}/{split}: attributes() must stack every image's attributes",
        )


def check_feature_extractor(name: str) -> None:
    cls = registries().feature_extractor.get(name)
    try:
        extractor = cls(name, None)
    except ProtodiffError as exc:  # weights are local files the user gives; none are here
        raise ConformanceSkipped(f"feature extractor {name} needs local weights: {exc}") from None
    require(
        extractor.label("fid") in ("FID", f"FD_{name}") and extractor.label("kid") in ("KID", f"KD_{name}"),
        f"{name}: only the standard extractor's results are FID/KID, every other's FD_{name}/KD_{name}",
    )
    kwargs = extractor.calculate_metrics_kwargs()
    require(kwargs["feature_layer_fid"] == extractor.layer, f"{name}: distances must use the extractor's layer")


def check_constructible(kind: str) -> Callable[[str], None]:
    """The check of a kind whose entries are only built here (metrics: they need a trained model)."""

    def check(name: str) -> None:
        build(kind, name)

    return check


def check_explainer(name: str) -> None:
    """It builds, and its ``explain`` asks only for inputs ``protodiff explain`` can give."""
    explainer = build("explainer", name)
    explainer.inputs()  # a RegistrationError naming the input it cannot have
    require(explainer.default_images >= explainer.min_images >= 1, f"explainer {name}: needs default_images >= min_images >= 1")


def check_saliency(name: str) -> None:
    """Maps (B, H, W) at the images' size, finite, the same for the same seed, on a tiny plain DDPM
    (for a source that maps only some models, such as a prototype conditioner's, the source's own
    ``check`` must refuse that model with a ProtodiffError instead)."""
    from protodiff.experiment import load_experiment
    from protodiff.model import ConditionedDiffusion

    source = build("saliency", name)
    config = load_experiment("ddpm-shapes", ["model.denoiser.preset=test", "data.image_size=16"])
    model = ConditionedDiffusion.from_experiment(config).eval()
    if source.targeted:  # a plain DDPM has no condition dimension to aim at
        return
    try:
        source.check(model)
    except ProtodiffError:
        return
    x0 = images(size=16)
    first, again = (source.maps(model, x0, target=None, generator=torch.Generator().manual_seed(0)) for _ in range(2))
    require(first.shape == (BATCH, 16, 16), f"saliency {name}: maps have shape {tuple(first.shape)}, expected ({BATCH}, 16, 16)")
    require(torch.isfinite(first).all(), f"saliency {name}: non-finite map values")
    require(torch.equal(first, again), f"saliency {name}: the same generator seed gave different maps")


def check_published(name: str) -> None:
    """A YAML file of published numbers: ``source`` and ``numbers`` (dataset -> method -> metric label -> number)."""
    path = Path(registries().published.get(name))
    data = read_yaml(path)
    require(isinstance(data.get("source"), str), f"published {name}: {path}: 'source' must say where the numbers come from")
    numbers = data.get("numbers")
    require(isinstance(numbers, dict), f"published {name}: {path}: 'numbers' must map dataset -> method -> label -> number")
    for dataset, methods in numbers.items():
        for method, labels in (methods or {}).items():
            for label, value in (labels or {}).items():
                require(
                    isinstance(value, (int, float)) and not isinstance(value, bool),
                    f"published {name}: {path}: {dataset}.{method}.{label} must be a number, got {value!r}",
                )


def check_presets(kind: str, name: str) -> None:
    """Every preset of the component parses against its ``Config`` (a plugin's presets of another's
    component included)."""
    registry = registries().kind(kind)
    config = getattr(registry.get(name), "Config", None)
    if config is None:
        return
    for preset, values in registry.presets(name).items():
        parse(config, values, where=f"{kind} {name!r} preset {preset!r}", source="presets")


def check_component(kind: str, name: str) -> None:
    """Check that registry entry ``kind``/``name`` honours its contract; raises
    :class:`ConformanceError` (an AssertionError) naming what is wrong, or
    :class:`ConformanceSkipped` when it cannot be checked here."""
    registry = registries().kind(kind)
    (registry.check or check_constructible(kind))(name)
    check_presets(kind, name)


def registered_components() -> list[tuple[str, str]]:
    """Every (kind, name) with a conformance check, families excluded (their members are open-ended)."""
    return [
        (kind, entry.name)
        for kind, registry in registries().all().items()
        if registry.check is not None or registry.contract is not None
        for entry in registry.entries()
        if not entry.family
    ]
