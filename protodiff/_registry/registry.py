"""Registries: the single place where components are found by name.

Each *kind* of component (conditioner, denoiser, sampler, ...) has one :class:`Registry`, whose
entries must implement that kind's contract (an abstract base class). The kinds themselves are
added by plugins, through the ``protodiff_add_kinds`` hook (as pytest plugins add hook
specifications with ``pytest_addhooks``): the core adds its own (:mod:`protodiff._registry.builtins`),
and a method that needs a kind of component the core does not know (Patronus' prototype layer)
adds it in its plugin. Components then fill them through ``protodiff_register``; everything else
looks them up here, so the core never names a method. Names are validated when they are added, a
duplicate is refused with the plugin that got there first, and an unknown name is answered with
the closest registered ones.

This module imports no contract (the kinds bring theirs), so the contracts, the registries and the
config parser that builds components from them depend on one another in one direction only.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from protodiff.errors import RegistrationError, UnknownComponentError, UnknownKindError

T = TypeVar("T")

#: Lower-case words joined by single hyphens: ``log-l2``, ``latent-ddpm``, ``patronus-conv``; the
#: last may end in ``+`` or ``++`` where a method is named so (``dpm-solver++``).
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*\+{0,2}$")
#: A kind is a Python identifier in lower case (``prototype_layer``): ``registries().prototype_layer``.
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
#: Checks a registered entry against its kind's contract by running it (:mod:`protodiff.testing`).
Check = Callable[[str], None]

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

    def __init__(self, kind: str, contract: type | None = None, *, check: Check | None = None, plugin: str = "<direct>") -> None:
        self.kind = kind
        #: The class every entry must subclass (None: anything, e.g. a preset's path).
        self.contract = contract
        #: The conformance check :func:`protodiff.testing.check_component` runs on an entry (None: build it).
        self.check = check
        #: The plugin that added this kind.
        self.plugin = plugin
        self._entries: dict[str, Entry[Any]] = {}
        self._presets: dict[tuple[str, str], Entry[Mapping[str, Any]]] = {}

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

    def add_preset(self, name: str, preset: str, values: Mapping[str, Any]) -> None:
        """Give the registered component ``name`` a preset ``preset`` (option values applied before
        the user's own), as its class's ``presets`` would: a plugin's presets of another plugin's
        or of the core's components (DiffAE's settings of the core's ``latent-ddpm`` prior)."""
        self._check_name(preset)
        known = self.presets(name)
        if preset in known:
            owner = self._presets.get((name, preset))
            who = f"plugin {owner.plugin!r}" if owner is not None else f"the class {self.get(name).__qualname__}"
            raise RegistrationError(f"{self.kind} {name!r} already has a preset {preset!r} from {who}")
        self._presets[(name, preset)] = Entry(preset, dict(values), _current_plugin.get())

    def presets(self, name: str) -> dict[str, Mapping[str, Any]]:
        """Every preset of component ``name``: its class's ``presets`` and those plugins added."""
        target = self.get(name)
        added = {preset: entry.target for (owner, preset), entry in self._presets.items() if owner == name}
        return {**getattr(target, "presets", {}), **added}

    def remove_plugin(self, plugin: str) -> None:
        """Drop everything ``plugin`` registered (used to roll back a plugin that failed half-way)."""
        self._entries = {k: e for k, e in self._entries.items() if e.plugin != plugin}
        self._presets = {k: e for k, e in self._presets.items() if e.plugin != plugin}

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
            target = family.target(name[len(family.name) :])
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

    def added_presets(self, plugin: str) -> list[str]:
        """``component:preset`` for each preset ``plugin`` added (for `protodiff plugins`)."""
        return sorted(f"{name}:{preset}" for (name, preset), e in self._presets.items() if e.plugin == plugin)

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
    """Every kind of component, one :class:`Registry` each: ``registries().sampler.get("ddim")``.

    The kinds are added by plugins (:meth:`add_kind`, from their ``protodiff_add_kinds`` hook):
    the core's are listed in ``docs/architecture.md`` with their contracts. The process-wide
    instance is :func:`protodiff.registries`.
    """

    def __init__(self) -> None:
        self._kinds: dict[str, Registry[Any]] = {}

    def add_kind(self, kind: str, contract: type | None = None, *, check: Check | None = None) -> Registry[Any]:
        """Add a kind of component: a registry whose entries subclass ``contract`` (None: any
        value), checked in the conformance tests by ``check(name)``. Returns the new registry,
        reachable as ``registries().<kind>``."""
        plugin = _current_plugin.get()
        if not isinstance(kind, str) or not KIND_PATTERN.match(kind) or kind in vars(Registries):
            raise RegistrationError(
                f"invalid kind {kind!r} from plugin {plugin!r}: use a lower-case identifier, e.g. 'prototype_layer'"
            )
        if kind in self._kinds:
            raise RegistrationError(
                f"kind {kind!r} is already added by plugin {self._kinds[kind].plugin!r}; plugin {plugin!r} must choose another name"
            )
        if contract is not None and not isinstance(contract, type):
            raise RegistrationError(f"kind {kind!r} from plugin {plugin!r}: the contract must be a class, got {contract!r}")
        registry: Registry[Any] = Registry(kind, contract, check=check, plugin=plugin)
        self._kinds[kind] = registry
        return registry

    def kind(self, kind: str) -> Registry[Any]:
        """The registry of ``kind``; an unknown kind is a one-line error naming the known ones."""
        registry = self._kinds.get(kind)
        if registry is None:
            close = difflib.get_close_matches(kind, self._kinds, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UnknownKindError(
                f"no kind of component {kind!r}; {hint}the kinds are {', '.join(self._kinds) or 'none'} "
                "(a plugin adds kinds in its protodiff_add_kinds hook: is it installed? see `protodiff plugins`)"
            )
        return registry

    def __getattr__(self, kind: str) -> Registry[Any]:
        if kind.startswith("_"):
            raise AttributeError(kind)
        return self.kind(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._kinds

    def add_presets(self, directory: Path) -> None:
        """Register every ``*.yaml`` experiment file in ``directory`` as a preset named after its stem."""
        for path in sorted(Path(directory).glob("*.yaml")):
            self.kind("preset").add(path.stem, path)

    def all(self) -> dict[str, Registry[Any]]:
        """Kind -> registry, in the order the kinds were added (the core's first)."""
        return dict(self._kinds)

    def remove_plugin(self, plugin: str) -> None:
        """Drop the kinds ``plugin`` added (with whatever they hold) and everything it registered."""
        self._kinds = {kind: reg for kind, reg in self._kinds.items() if reg.plugin != plugin}
        for reg in self._kinds.values():
            reg.remove_plugin(plugin)

    def registered_by(self, plugin: str) -> dict[str, list[str]]:
        """What ``plugin`` added, per registry (for `protodiff plugins`): its kinds under ``kinds``,
        presets it gave other components under ``<kind> presets``."""
        found: dict[str, list[str]] = {}
        kinds = [kind for kind, reg in self._kinds.items() if reg.plugin == plugin]
        if kinds:
            found["kinds"] = kinds
        for kind, reg in self._kinds.items():
            names = [e.name + "<name>" if e.family else e.name for e in reg.entries() if e.plugin == plugin]
            if names:
                found[kind] = names
            presets = reg.added_presets(plugin)
            if presets:
                found[f"{kind} presets"] = presets
        return found
