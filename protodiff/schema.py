"""The files protodiff writes and reads back, checked against their schema on the way in.

A classifier's ``classifier.json``, an explanation's ``meta.json``, a bench's ``run.json`` and
``cell.json``: protodiff wrote each, atomically, but a file can still be damaged, hand-edited or
come from an older or newer protodiff, and trusting it turns a missing key into a ``KeyError``
traceback far from the file. :func:`read_json` reads one and checks it against a small schema,
so any such file fails in one line naming the file, the key and what was expected.

A schema is a plain value: a type (``int`` refuses ``True``; ``float`` takes an int), a tuple of
types, ``[item_schema]`` (a list of items), ``{key: schema}`` (a mapping holding at least these
keys; other keys are allowed, so older readers accept newer files), :class:`ValuesOf` (a mapping
whose every value matches one schema), :class:`OptionalKey` (a key that may be absent, or null) and
:data:`ANY`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protodiff.errors import ProtodiffError


class SchemaError(ProtodiffError):
    """A file protodiff wrote, read back damaged or not matching its schema."""


@dataclass(frozen=True)
class OptionalKey:
    """A mapping key that may be absent or null; when present it must match ``schema``."""

    schema: Any


@dataclass(frozen=True)
class ValuesOf:
    """A mapping (of any keys) whose every value matches ``schema``."""

    schema: Any


#: Any value at all.
ANY = object()

_NAMES = {dict: "a mapping", list: "a list", str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _expected(schema: Any) -> str:
    if isinstance(schema, tuple):
        return " or ".join(_expected(s) for s in schema)
    if isinstance(schema, type):
        return _NAMES.get(schema, schema.__name__)
    return _NAMES[dict] if isinstance(schema, dict) else _NAMES[list]


def _matches_type(value: Any, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _join(where: str, key: object) -> str:
    return f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}" if where else str(key)


def check(value: Any, schema: Any, source: str | Path, where: str = "") -> Any:
    """``value`` if it matches ``schema``, else a one-line :class:`SchemaError` naming ``source``
    and the key path."""

    def fail(problem: str) -> SchemaError:
        return SchemaError(f"{source}: {where or '<top level>'}: {problem}")

    if schema is ANY:
        return value
    if isinstance(schema, OptionalKey):
        return None if value is None else check(value, schema.schema, source, where)
    if isinstance(schema, (type, tuple)):
        kinds = schema if isinstance(schema, tuple) else (schema,)
        if not any(_matches_type(value, k) for k in kinds):
            raise fail(
                f"expected {_expected(schema)}, got {json.dumps(value)[:40] if _jsonable(value) else type(value).__name__}"
            )
        return value
    if isinstance(schema, ValuesOf):
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {type(value).__name__}")
        for key, item in value.items():
            check(item, schema.schema, source, _join(where, key))
        return value
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise fail(f"expected a list, got {type(value).__name__}")
        for i, item in enumerate(value):
            check(item, schema[0], source, _join(where, i))
        return value
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise fail(f"expected a mapping, got {type(value).__name__}")
        for key, sub in schema.items():
            if key not in value:
                if isinstance(sub, OptionalKey):
                    continue
                raise SchemaError(f"{source}: {_join(where, key)}: required key is missing")
            check(value[key], sub, source, _join(where, key))
        return value
    raise TypeError(f"not a schema: {schema!r}")  # a bug in the caller


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def read_json(path: str | Path, schema: Any, *, fix: str) -> Any:
    """The JSON value in ``path``, checked against ``schema``; a file that is missing, unreadable,
    not JSON or off-schema is a one-line :class:`SchemaError` ending in ``fix`` (what to do)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise SchemaError(f"{path}: missing; {fix}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise SchemaError(f"{path}: unreadable ({reason}); {fix}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: damaged, not JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    try:
        return check(value, schema, path)
    except SchemaError as exc:
        raise SchemaError(f"{exc}; {fix}") from None
