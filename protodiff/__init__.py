"""protodiff: interpretable diffusion conditioners (Patronus and friends).

The front door for research code::

    import protodiff

    config = protodiff.load_experiment("patronus-shapes", ["train.steps=50"])
    protodiff.train(config, "runs/tiny")
    model, config = protodiff.load_model("runs/tiny")        # a ConditionedDiffusion
    condition = model.encode(images)                          # a Condition: vector s, maps
    results = protodiff.evaluate("runs/tiny", metrics=["tad", "latent-auroc"])
    explanation = protodiff.explain("runs/tiny", "edit", images=8, options={"to": ["proto_03=3.0"]})
    protodiff.registries().metric.names()                     # what is installed

Everything here is imported on first use, so ``import protodiff`` costs nothing (torch is only
imported when a name that needs it is touched). The layout and the extension points are described
in ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from protodiff._registry import moved
from protodiff._version import __version__

moved.install()  # old module paths (protodiff.plugins, protodiff.hookspecs, ...) keep importing

#: Front-door name -> the module that defines it.
_HOMES = {
    "load_experiment": "protodiff.experiment",
    "train": "protodiff.training",
    "load_model": "protodiff.checkpoint",
    "evaluate": "protodiff.evaluation",
    "Results": "protodiff.evaluation",
    "explain": "protodiff.explain",  # the package itself, callable: protodiff.explain(run, name, ...)
    "Explanation": "protodiff.contracts.explainer",
    "registries": "protodiff._registry.manager",
    "ConditionedDiffusion": "protodiff.model",
    "Condition": "protodiff.contracts.conditioner",
    "hookimpl": "protodiff._registry.hookspecs",
    "Registries": "protodiff._registry.registry",
}

__all__ = ["__version__", *_HOMES]

if TYPE_CHECKING:
    from protodiff._registry.hookspecs import hookimpl as hookimpl
    from protodiff._registry.manager import registries as registries
    from protodiff._registry.registry import Registries as Registries
    from protodiff.checkpoint import load_model as load_model
    from protodiff.contracts.conditioner import Condition as Condition
    from protodiff.contracts.explainer import Explanation as Explanation
    from protodiff.evaluation import Results as Results
    from protodiff.evaluation import evaluate as evaluate
    from protodiff.experiment import load_experiment as load_experiment
    from protodiff.explain.context import explain as explain
    from protodiff.model import ConditionedDiffusion as ConditionedDiffusion
    from protodiff.training import train as train


def __getattr__(name: str) -> Any:
    """Import a front-door name from its home module the first time it is used (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'protodiff' has no attribute {name!r}")
    module = importlib.import_module(home)
    value = module if home == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})
