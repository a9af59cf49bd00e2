"""Explanation as one library call: :func:`explain` and the :class:`ExplainContext` it gives an explainer.

::

    explanation = protodiff.explain("runs/ps", "edit", images=8, options={"to": ["proto_03=3.0"]})
    explanation.meta, explanation.tensors["images"]
    explanation.save("edit-out")                  # tensors.safetensors, meta.json, the figures

``protodiff explain NAME RUN`` parses its command line into exactly this call, and a bench cell
makes it for every explainer it runs, so an explainer behaves alike under all three. As
:func:`protodiff.evaluate` gives each metric an ``EvalContext``, this gives each explainer the
inputs its ``explain`` declares (:data:`~protodiff.contracts.explainer.INPUTS`), each drawn from
one :class:`ExplainContext`: the data split its images come from, the run's train split (opened
only for an explainer that asks), a generator seeded with ``seed``, and an attribute classifier
checked against the data's attributes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from protodiff.checkpoint import model_and_experiment
from protodiff.config import ComponentSpec
from protodiff.contracts.explainer import Explainer, Explanation
from protodiff.errors import ProtodiffError
from protodiff.explain.effects import check_classifier

if TYPE_CHECKING:
    from protodiff.contracts.dataset import DatasetSource, LabeledImages
    from protodiff.experiment import ExperimentConfig
    from protodiff.metrics.attribute_classifier import AttributeClassifier
    from protodiff.model import ConditionedDiffusion


@dataclass(frozen=True)
class ExplainContext:
    """What one explanation draws an explainer's inputs from, besides the model and the images."""

    #: The dataset the explained images come from.
    source: DatasetSource
    #: The name of the split they come from, and that split, opened.
    split: str
    data: LabeledImages
    #: The model's device: the images are put there.
    device: torch.device
    #: Seeds the ``generator`` input and the explanation's global RNG (in a fork: the caller's is untouched).
    seed: int = 0
    #: The attribute classifier that judges images, checked against ``data``'s attributes (None: none given).
    classifier: AttributeClassifier | None = None

    @classmethod
    def open(
        cls,
        experiment: ExperimentConfig,
        *,
        split: str = "test",
        device: torch.device,
        seed: int = 0,
        classifier: str | os.PathLike[str] | AttributeClassifier | None = None,
    ) -> ExplainContext:
        """Open ``split`` of the experiment's dataset and load ``classifier`` (a directory) or check it."""
        source = experiment.data.build()
        data = source.open(split)
        return cls(source, split, data, device, seed, _classifier(classifier, data, device))

    def images(self, count: int) -> Tensor:
        """The first ``count`` images of the split (all of them if it has fewer), on the device."""
        return torch.stack([self.data[i][0] for i in range(min(count, len(self.data)))]).to(self.device)

    def inputs(self, wanted: Mapping[str, bool]) -> dict[str, Any]:
        """The keyword inputs for an explainer that declares ``wanted`` (its ``inputs()``); an input
        it may go without is ``None`` when the context lacks it."""
        given: dict[str, Any] = {}
        for name in wanted:
            if name == "data":
                given[name] = self.data
            elif name == "train":
                given[name] = self.data if self.split == "train" else self.source.open("train")
            elif name == "generator":
                given[name] = torch.Generator().manual_seed(self.seed)
            elif name == "classifier":
                given[name] = self.classifier
        return given


def _classifier(
    classifier: str | os.PathLike[str] | AttributeClassifier | None, data: LabeledImages, device: torch.device
) -> AttributeClassifier | None:
    if classifier is None:
        return None
    if isinstance(classifier, (str, os.PathLike)):
        from protodiff.metrics.attribute_classifier import AttributeClassifier

        classifier = AttributeClassifier.load(Path(classifier), device=device)
    check_classifier(classifier, list(data.attribute_names))
    return classifier


def build_explainer(name: str, options: Mapping[str, Any] | None = None) -> Explainer:
    """The registered explainer ``name`` with ``options`` (its ``Config``, checked like every config:
    an unknown key is one line naming ``explain NAME`` and the closest valid keys)."""
    spec = ComponentSpec("explainer", name, raw=dict(options or {}))
    explainer: Explainer = spec.resolved(source=f"explain {name}").build()
    return explainer


def explain(
    run_or_model: str | os.PathLike[str] | ConditionedDiffusion,
    name: str,
    *,
    images: Tensor | int | None = None,
    split: str = "test",
    options: Mapping[str, Any] | None = None,
    classifier: str | os.PathLike[str] | AttributeClassifier | None = None,
    seed: int = 0,
    experiment: ExperimentConfig | None = None,
    device: str | torch.device = "auto",
    use_ema: bool = True,
) -> Explanation:
    """Run the registered explainer ``name`` on a run, a checkpoint, or a model in memory.

    ``images`` is the batch to explain (in [-1, 1]), or how many of the first images of ``split``
    to explain (default: the explainer's ``default_images``). ``options`` are the explainer's own
    (its ``Config``: ``{"to": ["proto_03=3.0"]}`` for ``edit``). ``classifier`` (a directory
    written by ``protodiff classifier train``, or a loaded ``AttributeClassifier``) judges
    attributes, for the explainers that declare it; one that requires it is refused without it.
    ``seed`` seeds the explainer's ``generator`` and, in a fork, the global RNG (the caller's
    state is untouched). ``experiment`` is the config to explain under (required with a model in
    memory: the one :func:`protodiff.load_model` returned); ``device`` and ``use_ema`` apply when
    a checkpoint is loaded. The explainer and its options are checked before the model is loaded;
    the explanation's ``images`` says how many images were explained.
    """
    explainer = build_explainer(name, options)
    wanted = explainer.inputs()
    if wanted.get("classifier") and classifier is None:
        raise ProtodiffError(
            f"explain {name} judges attributes: pass --classifier DIR (train one with `protodiff classifier train`)"
        )
    with torch.random.fork_rng(devices=[]):  # building a model draws its initial weights: not from the caller's RNG
        model, experiment, _, _ = model_and_experiment(
            run_or_model, experiment, device=device, use_ema=use_ema, action="explaining"
        )
        context = ExplainContext.open(experiment, split=split, device=model.device, seed=seed, classifier=classifier)
        batch = images.to(model.device) if isinstance(images, Tensor) else context.images(images or explainer.default_images)
        explanation = _run(explainer, model, batch, context.inputs(wanted), seed)
    explanation.images = len(batch)
    return explanation


def _run(explainer: Explainer, model: ConditionedDiffusion, batch: Tensor, inputs: dict[str, Any], seed: int) -> Explanation:
    """The explainer on ``batch`` in eval mode, the global RNG seeded with ``seed`` in a fork."""
    was_training = model.training
    model.eval()
    cuda = [model.device.index or 0] if model.device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            return explainer.explain(model, batch, **inputs)
    finally:
        model.train(was_training)
