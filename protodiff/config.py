"""Typed experiment configuration: YAML in, dataclasses out, and back.

The schema *is* the dataclasses below plus each component's own ``Config`` dataclass; YAML files,
``--set key=value`` overrides and the resolved ``config.yaml`` written beside every checkpoint all
go through :func:`parse` and :func:`to_dict`. Unknown keys and wrong types are errors naming the
key path and the file, so a typo never silently falls back to a default.

A *component* (denoiser, conditioner, sampler, dataset, ...) is written as a mapping with its
registry ``name``, an optional ``preset`` (named defaults the component ships) and its options::

    denoiser: {name: unet, preset: tiny, dropout: 0.0}

The name is looked up in the registries (:func:`protodiff._registry.manager.registries`) and the options are
parsed against that class's ``Config`` (see :class:`protodiff._registry.component.Component`). The
registries and the contracts never import this module, so there is no cycle between them.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from protodiff._registry.manager import registries
from protodiff.errors import ConfigError, UnknownComponentError

C = TypeVar("C")
_FLOAT_LITERAL = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


# ---------------------------------------------------------------------------------------------
# Components
# ---------------------------------------------------------------------------------------------
@dataclass
class ComponentSpec:
    """A component chosen by name, with its resolved typed options."""

    kind: str  # the registry, e.g. "denoiser"
    name: str
    preset: str | None = None
    config: Any = None  # an instance of the component's Config once resolved
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)  # options before resolution

    def component_class(self) -> type:
        """The registered class this spec names (looked up in the process-wide registries)."""
        return registries().kind(self.kind).get(self.name)

    def resolved(self, where: str = "", source: str = "<config>") -> ComponentSpec:
        """This spec with ``config`` parsed against the component's ``Config`` dataclass."""
        if self.config is not None:
            return self
        return _parse_component(self.kind, {"name": self.name, "preset": self.preset, **self.raw}, where, source)

    def build(self, **context: Any) -> Any:
        """Instantiate the component: ``cls(config, **context)``."""
        spec = self.resolved()
        return spec.component_class()(spec.config, **context)


def component(kind: str, name: str, **options: Any) -> Any:
    """A dataclass field holding a component of ``kind``, defaulting to ``name`` with ``options``."""
    return field(
        default_factory=lambda: ComponentSpec(kind, name, raw=dict(options)),
        metadata={"kind": kind},
    )


def optional_component(kind: str) -> Any:
    """A dataclass field holding an optional component of ``kind`` (default: none)."""
    return field(default=None, metadata={"kind": kind})


def override_component(configured: ComponentSpec, name: str | None, options: Mapping[str, Any]) -> ComponentSpec:
    """``configured`` with ``options`` on top; naming another component starts from its defaults
    (so a command-line ``--sampler ddpm --steps 20`` never inherits DDIM's ``eta``)."""
    if name is not None and name != configured.name:
        return ComponentSpec(configured.kind, name, raw=dict(options))
    base = to_dict(configured)
    base.pop("name")
    return ComponentSpec(configured.kind, configured.name, raw={**base, **options})


def _parse_component(kind: str, value: Any, where: str, source: str) -> ComponentSpec:
    if isinstance(value, str):  # shorthand: `sampler: ddim`
        value = {"name": value}
    if isinstance(value, ComponentSpec):
        return value.resolved(where, source)
    if not isinstance(value, Mapping) or "name" not in value:
        raise ConfigError(f"{source}: {where}: expected a mapping with a 'name' key naming a {kind}")
    options = dict(value)
    name = options.pop("name")
    preset = options.pop("preset", None)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: {where}.name: expected the name of a {kind}, got {name!r}")
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{source}: {where}.preset: expected a preset name, got {preset!r}")
    try:
        cls = ComponentSpec(kind, name).component_class()
    except UnknownComponentError as exc:
        raise ConfigError(f"{source}: {where}.name: {exc}") from None
    values: dict[str, Any] = {}
    if preset is not None:
        presets = registries().kind(kind).presets(name)  # the class's, and those plugins gave it
        if preset not in presets:
            known = ", ".join(sorted(presets)) or "none"
            raise ConfigError(f"{source}: {where}.preset: {kind} {name!r} has no preset {preset!r} (known: {known})")
        values.update(presets[preset])
    values.update(options)
    config = parse(cls.Config, values, where=where, source=source)
    return ComponentSpec(kind, name, preset, config)


# ---------------------------------------------------------------------------------------------
# Parsing and dumping
# ---------------------------------------------------------------------------------------------
def parse(cls: type[C], data: Mapping[str, Any] | None, *, where: str = "", source: str = "<config>") -> C:
    """Build dataclass ``cls`` from a mapping, checking every key and type."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where or '<top level>'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f" (allowed: {', '.join(fields)})"
                if fields
                else " (it takes no options)"
            )
            raise ConfigError(f"{source}: {_join(where, key)}: unknown key{hint}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = _join(where, name)
        kind = f.metadata.get("kind")
        if name in data:
            value = data[name]
        elif f.default is not dataclasses.MISSING:
            value = f.default
        elif f.default_factory is not dataclasses.MISSING:
            value = f.default_factory()
        else:
            raise ConfigError(f"{source}: {path}: required key is missing")
        if kind is not None:
            if value is None and f.default_factory is not dataclasses.MISSING:  # only optional_component may be empty
                raise ConfigError(f"{source}: {path}: a {kind} is required, got nothing (e.g. name: {f.default_factory().name})")
            if isinstance(value, Mapping) and "name" not in value and f.default_factory is not dataclasses.MISSING:
                default = f.default_factory()  # `--set model.denoiser.dropout=0` keeps the default component
                value = {"name": default.name, "preset": default.preset, **default.raw, **value}
            kwargs[name] = None if value is None else _parse_component(kind, value, path, source)
        else:
            kwargs[name] = _convert(value, hints[name], path, source)
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # __post_init__'s own message names the option
        raise ConfigError(f"{source}: {where}: {exc}" if where else f"{source}: {exc}") from None


def _join(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, path: str, source: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{source}: {path}: expected {expected}, got {value!r}")

    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:  # Optional[X]: X's own error is the informative one
            return _convert(value, options[0], path, source)
        for option in options:
            try:
                return _convert(value, option, path, source)
            except ConfigError:
                continue
        raise fail(" or ".join(_type_name(a) for a in args))
    if origin is Literal:
        if value in args:
            return value
        raise fail("one of " + ", ".join(repr(a) for a in args))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):  # a default instance: re-parse so nested components get resolved
            value = to_dict(value)
        return parse(tp, value, where=path, source=source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail("true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail("an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT_LITERAL.match(value.strip()):
            return float(value)  # YAML 1.1 reads `1e-4` (no dot) as a string; it is meant as a number
        raise fail("a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail("a string")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]", source) for i, v in enumerate(value))
        if len(value) != len(args):
            raise fail(f"a list of {len(args)} items")
        return tuple(_convert(v, a, f"{path}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise fail("a list")
        return [_convert(v, args[0], f"{path}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail("a mapping")
        return {str(k): _convert(v, args[1], _join(path, k), source) for k, v in value.items()}
    raise TypeError(f"config type {tp!r} at {path} is not supported")  # a bug in a Config class


def to_dict(obj: Any) -> Any:
    """Plain YAML-ready data (dicts, lists, scalars) for a config dataclass or value."""
    if isinstance(obj, ComponentSpec):
        spec = obj.resolved()
        head: dict[str, Any] = {"name": spec.name}
        if spec.preset is not None:
            head["preset"] = spec.preset
        return {**head, **to_dict(spec.config)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def apply_overrides(data: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values read as YAML) to a raw config mapping, in place.

    Naming another component (``--set sample.sampler.name=dpm-solver++``) starts it from that
    component's defaults, as ``override_component`` does on the command line: the options the
    file gave the old one (DDIM's ``eta``) are dropped, those set by other overrides are kept
    (renames are applied first).
    """
    renames = [item for item in overrides if item.partition("=")[0].strip().endswith(".name")]
    for item in renames + [item for item in overrides if item not in renames]:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set train.steps=200")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif isinstance(child, str):  # `sampler: ddim` shorthand extended by `sampler.steps=20`
                child = node[part] = {"name": child}
            elif not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is not a section")
            node = child
        if parts[-1] == "name" and len(parts) > 1 and node.get("name") not in (None, value):
            node.clear()
        node[parts[-1]] = value
    return data


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping from ``path``; a missing file or a syntax error is a one-line ConfigError."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (damaged?); a config is YAML text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}:{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def dump_yaml(obj: Any) -> str:
    return yaml.safe_dump(to_dict(obj), sort_keys=False, default_flow_style=None)
