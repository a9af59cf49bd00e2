"""The experiment schema: one YAML file describes data, model, training and sampling.

``protodiff train CONFIG`` takes a path or the name of a registered preset (``protodiff plugins``
lists them); ``--set section.key=value`` overrides any key. The resolved config (every default
filled in) is written beside every checkpoint and result, so a run can always be reproduced.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from protodiff._registry.manager import registries
from protodiff.config import ComponentSpec, apply_overrides, component, optional_component, parse, read_yaml
from protodiff.contracts.conditioner import CondMode
from protodiff.diffusion.schedule import ScheduleConfig
from protodiff.errors import ConfigError
from protodiff.validation import at_least, positive, probability
from protodiff.validation import seed as check_seed

#: The denoiser option through which a config overrides the conditioner's preferred mode.
COND_MODE_OPTION = "cond_mode"


@dataclass
class ModelConfig:
    """A conditioner, a denoiser conditioned on its embedding, and the noise schedule.

    The conditioning mode is chosen by :func:`chosen_cond_mode` and written into the denoiser's
    ``cond_mode`` option when the config is parsed, so a resolved config.yaml records the mode the
    model uses (configs written before it was recorded say ``cond_mode: null``; they still load,
    and mean the same thing).
    """

    diffusion: ScheduleConfig = field(default_factory=ScheduleConfig)
    denoiser: ComponentSpec = component("denoiser", "unet")
    conditioner: ComponentSpec = component("conditioner", "none")
    #: Condition dropout in training, classifier-free guidance's training half: with this
    #: probability an image's whole condition vector is replaced by the batch's mean vector (an
    #: uninformative condition), so the denoiser also learns to denoise without it.
    condition_dropout: float = 0.0
    #: The same per dimension: each dimension on its own is replaced by its batch mean with this
    #: probability, so that each is trained to act without the others' help.
    dimension_dropout: float = 0.0
    #: Condition noise in training: each dimension gets Gaussian noise of this many of its batch
    #: standard deviations, so the denoiser is also trained on vectors *near* those the encoder
    #: gives, as an edited vector is (noise conditioning augmentation).
    condition_noise: float = 0.0

    def __post_init__(self) -> None:
        probability(condition_dropout=self.condition_dropout, dimension_dropout=self.dimension_dropout)
        at_least(0.0, condition_noise=self.condition_noise)
        if max(self.condition_dropout, self.dimension_dropout) >= 1.0:
            raise ValueError("condition_dropout and dimension_dropout must be below 1 (at 1 the condition is never seen)")
        denoiser = self.denoiser.resolved()
        mode = chosen_cond_mode(self)  # a mode no plugin registered is refused here, naming the known ones
        if getattr(denoiser.config, COND_MODE_OPTION, "") is None:
            options = {COND_MODE_OPTION: mode}
            self.denoiser = dataclasses.replace(denoiser, config=dataclasses.replace(denoiser.config, **options))


def chosen_cond_mode(model: ModelConfig) -> CondMode:
    """How the denoiser applies the condition embedding: the denoiser config's ``cond_mode`` when
    set, else the conditioner's ``preferred_mode`` (a class attribute, known before anything is
    built); either must name a registered conditioning mode (a ValueError names the known ones)."""
    configured = getattr(model.denoiser.resolved().config, COND_MODE_OPTION, None)
    mode = configured or model.conditioner.component_class().preferred_mode
    modes = registries().cond_mode
    if mode not in modes:
        where = f"denoiser.{COND_MODE_OPTION}" if configured else f"conditioner {model.conditioner.name!r}'s preferred_mode"
        raise ValueError(f"{where}: {modes.unknown_message(mode)}")
    return mode


@dataclass
class TrainConfig:
    """Optimisation. Exactly one of ``steps`` and ``epochs`` sets the length of the run."""

    steps: int | None = 1000
    epochs: int | None = None
    #: Global batch size (split evenly over DDP ranks).
    batch_size: int = 16
    lr: float = 1e-4
    #: Per-module learning-rate factors: parameter-name prefix -> multiplier of ``lr``, e.g.
    #: ``{conditioner: 3.0}``; the longest matching prefix wins, unmatched parameters get 1.
    lr_multipliers: dict[str, float] = field(default_factory=dict)
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0
    #: Clip the global gradient norm to this (null: no clipping; the norm is still logged).
    grad_clip: float | None = 1.0
    #: Keep an exponential moving average of the weights with this decay (null: off).
    ema_decay: float | None = None
    #: ``auto``: bf16 autocast (fp32 master weights) where the hardware computes bf16 natively
    #: (CUDA; CPUs with AVX512-BF16 or AMX), else fp32; ``fp32`` or ``bf16`` to choose. A run
    #: records the precision it chose in its config.yaml and log, and resumes in it.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    #: ``auto``: read the train split into memory once when the run draws at least an epoch of it
    #: and it fits in 1 GiB as fp32 (same batches, no decoding per step); ``always`` or ``never``.
    preload: Literal["auto", "always", "never"] = "auto"
    #: ``torch.compile`` the model (inductor); falls back to eager, with a warning, where no C++
    #: compiler is present. Off by default: on the CPU presets its minute of compiling costs more
    #: than it saves (benchmarks/train_throughput.py measures it).
    compile: bool = False
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    #: Write a sample grid every this many steps (null: only at the end).
    sample_every: int | None = None
    num_workers: int = 0

    def __post_init__(self) -> None:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("set exactly one of train.steps and train.epochs (the other to null)")
        for name in ("steps", "epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"train.{name} must be positive")
        if self.batch_size < 1:
            raise ValueError("batch_size must be positive")
        positive(lr=self.lr, grad_clip=self.grad_clip)
        positive(**{f"lr_multipliers.{k}": v for k, v in self.lr_multipliers.items()})
        at_least(0, weight_decay=self.weight_decay, warmup_steps=self.warmup_steps, num_workers=self.num_workers)
        if not all(0.0 <= beta < 1.0 for beta in self.betas):
            raise ValueError(f"betas must each be in [0, 1), got {list(self.betas)}")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("checkpoint_every, log_every and keep_checkpoints must be positive")
        at_least(1, sample_every=self.sample_every)
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in (0, 1)")


@dataclass
class SampleConfig:
    sampler: ComponentSpec = component("sampler", "ddim")
    num_images: int = 64

    def __post_init__(self) -> None:
        at_least(1, num_images=self.num_images)


@dataclass
class ExperimentConfig:
    seed: int = 0
    data: ComponentSpec = component("dataset", "shapes")
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    #: A latent prior over condition vectors, fitted after training by `protodiff fit-prior`.
    prior: ComponentSpec | None = optional_component("latent_prior")

    def __post_init__(self) -> None:
        check_seed(seed=self.seed)


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path as given, or the file of a registered preset of that name."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    presets = registries().preset
    if str(name_or_path) in presets:
        return Path(presets.get(str(name_or_path)))
    raise ConfigError(f"{name_or_path}: no such config file or preset ({presets.unknown_message(str(name_or_path))})")


def _upgrade(data: dict) -> dict:
    """A config written before ``train.precision`` existed: its ``train.amp`` (bf16 autocast on
    CUDA only) becomes ``precision: auto`` (true) or ``fp32`` (false)."""
    train = data.get("train")
    if isinstance(train, dict) and "amp" in train and "precision" not in train:
        train = dict(train)
        train["precision"] = "auto" if train.pop("amp") else "fp32"
        data = {**data, "train": train}
    return data


def load_experiment(name_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> ExperimentConfig:
    """Parse a config file or preset, with ``key=value`` overrides applied first."""
    path = resolve_config_path(name_or_path)
    data = apply_overrides(_upgrade(read_yaml(path)), list(overrides))
    return parse(ExperimentConfig, data, source=str(path))


def experiment_from_dict(data: dict, source: str = "<config>") -> ExperimentConfig:
    return parse(ExperimentConfig, _upgrade(data), source=source)
