"""Typed registries: the single place where components are found by name.

Each extension point (encoder, conditioner, sampler, ...) has one :class:`Registry` whose entries
must implement that extension point's contract (an abstract base class). Plugins fill them through
the ``protodiff_register`` hook; everything else looks components up here, so the core never names
a method. Names are validated when they are added, a duplicate is refused with the plugin that got
there first, and an unknown name is answered with the closest registered ones.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from protodiff.contracts.conditioner import Conditioner
from protodiff.contracts.dataset import DatasetSource
from protodiff.contracts.denoiser import Denoiser
from protodiff.contracts.encoder import Encoder
from protodiff.contracts.explainer import Explainer
from protodiff.contracts.feature_extractor import FeatureExtractor
from protodiff.contracts.latent_prior import LatentPrior
from protodiff.contracts.metric import Metric
from protodiff.contracts.prototype_layer import PrototypeLayer
from protodiff.contracts.sampler import Sampler
from protodiff.errors import RegistrationError, UnknownComponentError

T = TypeVar("T")

#: Lower-case words joined by single hyphens: ``log-l2``, ``latent-ddpm``, ``patronus-conv``; the
#: last may end in ``+`` or ``++`` where a method is named so (``dpm-solver++``).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*\+{0,2}$")

_current_plugin: contextvars.ContextVar[str] = contextvars.ContextVar("protodiff_plugin", default="<direct>")


@contextlib.contextmanager
def registering_as(plugin: str) -> Iterator[None]:
    """Attribute every registration made inside the block to ``plugin`` (used by the plugin manager)."""
    token = _current_plugin.set(plugin)
    try:
        yield
    finally:
        _current_plugin.reset(token)


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component and the plugin that registered it."""

    name: str
    target: T
    plugin: str
    family: bool = False


class Registry(Generic[T]):
    """Named components of one kind, each checked against the kind's contract.

    Besides plain names, a registry holds *families*: a prefix such as ``timm-`` whose factory turns
    the rest of a name (``timm-resnet18`` -> ``resnet18``) into a component, so an open-ended set of
    components (every timm backbone) needs one registration, not thousands.
    """

    def __init__(self, kind: str, contract: type | None = None) -> None:
        self.kind = kind
        self.contract = contract
        self._entries: dict[str, Entry[Any]] = {}

    # -- registration -------------------------------------------------------------------------
    def add(self, name: str, target: T) -> T:
        """Register ``target`` under ``name``; returns it so this can be used as a decorator helper."""
        self._check_name(name)
        self._check_contract(name, target)
        self._put(Entry(name, target, _current_plugin.get()))
        return target

    def add_family(self, prefix: str, factory: Callable[[str], T]) -> None:
        """Register a family: ``get(prefix + suffix)`` returns ``factory(suffix)``.

        ``prefix`` is a valid name followed by a hyphen, e.g. ``"timm-"``.
        """
        if not prefix.endswith("-"):
            raise RegistrationError(f"{self.kind} family prefix {prefix!r} must end with '-', e.g. 'timm-'")
        self._check_name(prefix[:-1])
        self._put(Entry(prefix, factory, _current_plugin.get(), family=True))

    def remove_plugin(self, plugin: str) -> None:
        """Drop everything ``plugin`` registered (used to roll back a plugin that failed half-way)."""
        self._entries = {k: e for k, e in self._entries.items() if e.plugin != plugin}

    def _put(self, entry: Entry[Any]) -> None:
        existing = self._entries.get(entry.name)
        if existing is not None:
            raise RegistrationError(
                f"{self.kind} {entry.name!r} is already registered by plugin {existing.plugin!r}; "
                f"plugin {entry.plugin!r} must choose another name"
            )
        self._entries[entry.name] = entry

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise RegistrationError(
                f"invalid {self.kind} name {name!r} from plugin {_current_plugin.get()!r}: "
                "use lower-case words joined by hyphens, e.g. 'log-l2' (a final + or ++ allowed: 'dpm-solver++')"
            )

    def _check_contract(self, name: str, target: Any) -> None:
        if self.contract is None:
            return
        if not (isinstance(target, type) and issubclass(target, self.contract)):
            raise RegistrationError(
                f"{self.kind} {name!r} from plugin {_current_plugin.get()!r} must be a subclass of "
                f"{self.contract.__module__}.{self.contract.__qualname__}, got {target!r}"
            )

    # -- lookup -------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The component called ``name``; an unknown name raises with the closest matches."""
        entry = self._entries.get(name)
        if entry is not None and not entry.family:
            return entry.target
        family = self._family_for(name)
        if family is not None:
            target = family.target(name[len(family.name):])
            self._check_contract(name, target)
            return target
        raise UnknownComponentError(self.unknown_message(name))

    def _family_for(self, name: str) -> Entry[Any] | None:
        matches = [e for e in self._entries.values() if e.family and name.startswith(e.name) and len(name) > len(e.name)]
        return max(matches, key=lambda e: len(e.name), default=None)

    def unknown_message(self, name: str) -> str:
        known = self.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(known) or 'none'}"
        return f"unknown {self.kind} {name!r}; {hint} (see `protodiff plugins`)"

    def entry(self, name: str) -> Entry[T]:
        """The registration record (with its plugin) for an exact name or family prefix."""
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownComponentError(self.unknown_message(name)) from None

    def names(self) -> list[str]:
        """Registered names, families shown as ``prefix<name>``."""
        return sorted(e.name + "<name>" if e.family else e.name for e in self._entries.values())

    def entries(self) -> list[Entry[T]]:
        return sorted(self._entries.values(), key=lambda e: e.name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            (name in self._entries and not self._entries[name].family) or self._family_for(name) is not None
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"


class Registries:
    """All extension points, one registry each, keyed by the contract its entries subclass.

    The contracts are :mod:`protodiff.contracts` (one module per registry); ``docs/architecture.md``
    describes each. The process-wide instance is :func:`protodiff._registry.manager.registries`.
    """

    def __init__(self) -> None:
        self.encoder: Registry[type[Encoder]] = Registry("encoder", Encoder)
        self.prototype_layer: Registry[type[PrototypeLayer]] = Registry("prototype_layer", PrototypeLayer)
        self.conditioner: Registry[type[Conditioner]] = Registry("conditioner", Conditioner)
        self.denoiser: Registry[type[Denoiser]] = Registry("denoiser", Denoiser)
        self.sampler: Registry[type[Sampler]] = Registry("sampler", Sampler)
        self.latent_prior: Registry[type[LatentPrior]] = Registry("latent_prior", LatentPrior)
        self.explainer: Registry[type[Explainer]] = Registry("explainer", Explainer)
        self.metric: Registry[type[Metric]] = Registry("metric", Metric)
        self.feature_extractor: Registry[type[FeatureExtractor]] = Registry("feature_extractor", FeatureExtractor)
        self.dataset: Registry[type[DatasetSource]] = Registry("dataset", DatasetSource)
        #: Experiment presets: name -> path of a YAML file shipped by a plugin.
        self.preset: Registry[Path] = Registry("preset")

    def add_presets(self, directory: Path) -> None:
        """Register every ``*.yaml`` experiment file in ``directory`` as a preset named after its stem."""
        for path in sorted(Path(directory).glob("*.yaml")):
            self.preset.add(path.stem, path)

    def all(self) -> dict[str, Registry[Any]]:
        return {name: reg for name, reg in vars(self).items() if isinstance(reg, Registry)}

    def remove_plugin(self, plugin: str) -> None:
        for reg in self.all().values():
            reg.remove_plugin(plugin)

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` registered, per registry (for `protodiff plugins`)."""
        found: dict[str, list[str]] = {}
        for kind, reg in self.all().items():
            names = [e.name + "<name>" if e.family else e.name for e in reg.entries() if e.plugin == plugin]
            if names:
                found[kind] = names
        return found
