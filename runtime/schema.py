"""A validator for the subset of JSON Schema that ``manifest.schema.json`` uses.

The manifest is described once, in ``runtime/manifest.schema.json``; this module and
``web/src/schema.js`` are the two readers of that file, and implement the same keywords the
same way, so the Python and the browser runtime accept exactly the same manifests. A general
JSON Schema library would be a new dependency for every device; the subset is small:

- types (``integer`` excludes ``true`` and ``1.0``; ``number`` is finite), ``const``, ``enum``,
  ``minimum``, ``maximum``, ``exclusiveMaximum``, ``minLength``, ``pattern``;
- ``properties``, ``required``, ``additionalProperties``, ``propertyNames``, ``prefixItems``,
  ``items``, ``minItems``, ``maxItems``, ``uniqueItems``, ``contains``;
- ``allOf``, ``anyOf``, ``if``/``then``/``else``, local ``$ref`` (``#/$defs/...``);
- extensions: ``{"$data": "/pointer"}`` as the value of ``const``/``minimum``/``maximum``
  (a number from the same manifest), ``x-in`` (a key of the object, or an element of the
  array, at a pointer) and ``errorMessage`` (the message of any failure inside that node, the
  innermost one winning; ``{value}``, ``{path}``, ``{key}``, ``{type}``, ``{/pointer}`` are
  filled in with Python reprs).

Properties are checked in the schema's order, and a missing required property is checked as
``null`` against its own schema, so the first failure reported is the one a reader expects.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

_TEMPLATE = re.compile(r"\{(value|path|key|type|/[^{}]*)\}")
_IGNORED = {"$schema", "$id", "title", "$comment", "$defs", "errorMessage", "then", "else"}
_MISSING = object()


class _Fail:
    __slots__ = ("message",)

    def __init__(self, message: str | None) -> None:
        self.message = message


@cache
def manifest_schema() -> dict[str, Any]:
    """The parsed ``runtime/manifest.schema.json`` (package data, read once)."""
    # beside this module (package data), read as a plain file: importlib.resources would import
    # its readers inside device_bench's measuring window, where the baseline process has none
    return json.loads(Path(__file__).with_name("manifest.schema.json").read_text("utf-8"))


def first_error(instance: Any, schema: dict[str, Any]) -> str | None:
    """The message of the first rule ``instance`` breaks, or None if it is valid."""
    return _Validator(instance, schema).run()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


_TYPES = {
    "object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str), "integer": _is_int, "number": _is_number,
    "boolean": lambda v: isinstance(v, bool), "null": lambda v: v is None,
}


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: ``true`` is not ``1`` (Python's ``==`` says it is)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[x], b[x]) for x in a)
    return type(a) is type(b) and a == b


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


class _Validator:
    def __init__(self, root: Any, schema: dict[str, Any]) -> None:
        self.root = root
        self.schema = schema

    def run(self) -> str | None:
        fail = self.check(self.root, self.schema, ())
        if fail is None:
            return None
        return fail.message or "does not match the manifest schema"

    # -- helpers -----------------------------------------------------------------------------

    def pointer(self, ptr: str, doc: Any = None) -> Any:
        v = self.root if doc is None else doc
        for part in ptr.lstrip("/").split("/") if ptr not in ("", "/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(v, dict) and part in v:
                v = v[part]
            elif isinstance(v, list) and part.isdigit() and int(part) < len(v):
                v = v[int(part)]
            else:
                return _MISSING
        return v

    def data(self, x: Any) -> Any:
        """A keyword's value, with ``{"$data": pointer}`` resolved in the manifest."""
        if isinstance(x, dict) and set(x) == {"$data"}:
            return self.pointer(x["$data"])
        return x

    def message(self, template: str, v: Any, path: tuple[str, ...]) -> str:
        def fill(m: re.Match[str]) -> str:
            name = m.group(1)
            if name == "value":
                return repr(v)
            if name == "path":
                return ".".join(path) or "manifest"
            if name == "key":
                return repr(path[-1]) if path else "''"
            if name == "type":
                return type(v).__name__
            got = self.pointer(name)
            return repr(None if got is _MISSING else got)
        return _TEMPLATE.sub(fill, template)

    # -- the keywords ------------------------------------------------------------------------

    def check(self, v: Any, s: dict[str, Any], path: tuple[str, ...]) -> _Fail | None:
        fail = self.keywords(v, s, path)
        if fail is not None and fail.message is None and "errorMessage" in s:
            fail.message = self.message(s["errorMessage"], v, path)
        return fail

    def keywords(self, v: Any, s: dict[str, Any], path: tuple[str, ...]) -> _Fail | None:
        for kw, arg in s.items():
            if kw in _IGNORED:
                continue
            fail = self.keyword(kw, arg, v, s, path)
            if fail is not None:
                return fail
        return None

    def keyword(self, kw: str, arg: Any, v: Any, s: dict[str, Any],
                path: tuple[str, ...]) -> _Fail | None:
        bad = _Fail(None)
        if kw == "$ref":
            return self.check(v, self.pointer(arg.removeprefix("#"), self.schema), path)
        if kw == "type":
            types = arg if isinstance(arg, list) else [arg]
            return None if any(_TYPES[t](v) for t in types) else bad
        if kw == "const":
            want = self.data(arg)
            return None if want is not _MISSING and json_equal(v, want) else bad
        if kw == "enum":
            return None if any(json_equal(v, x) for x in arg) else bad
        if kw in ("minimum", "maximum", "exclusiveMaximum"):
            if not _is_number(v):
                return None
            lim = self.data(arg)
            if not _is_number(lim):
                return bad
            ok = v >= lim if kw == "minimum" else v <= lim if kw == "maximum" else v < lim
            return None if ok else bad
        if kw == "minLength":
            return None if not isinstance(v, str) or len(v) >= arg else bad
        if kw == "pattern":
            return None if not isinstance(v, str) or _regex(arg).search(v) else bad
        if kw == "x-in":
            target = self.pointer(arg)
            if isinstance(target, dict):
                return None if isinstance(v, str) and v in target else bad
            if isinstance(target, list):
                return None if any(json_equal(v, x) for x in target) else bad
            return bad
        if isinstance(v, dict):
            fail = self.object_keyword(kw, arg, v, s, path)
            if fail is not None:
                return fail
        if isinstance(v, list):
            fail = self.array_keyword(kw, arg, v, path)
            if fail is not None:
                return fail
        if kw == "allOf":
            for sub in arg:
                fail = self.check(v, sub, path)
                if fail is not None:
                    return fail
        elif kw == "anyOf":
            fails = [self.check(v, sub, path) for sub in arg]
            if all(f is not None for f in fails):
                # the last alternative's reason (schemas list null first, the real shape last)
                return fails[-1]
        elif kw == "if":
            branch = "then" if self.check(v, arg, path) is None else "else"
            if branch in s:
                return self.check(v, s[branch], path)
        return None

    def object_keyword(self, kw: str, arg: Any, v: dict[str, Any], s: dict[str, Any],
                       path: tuple[str, ...]) -> _Fail | None:
        if kw == "properties":
            required = s.get("required", ())
            for name, sub in arg.items():
                if name in v:
                    fail = self.check(v[name], sub, (*path, name))
                elif name in required:
                    fail = self.missing(name, s, path)
                else:
                    continue
                if fail is not None:
                    return fail
        elif kw == "required":
            for name in arg:
                if name not in v:
                    return self.missing(name, s, path)
        elif kw == "additionalProperties":
            known = s.get("properties", {})
            for name, x in v.items():
                if name in known:
                    continue
                if arg is False:
                    return _Fail(None)
                fail = self.check(x, arg, (*path, name))
                if fail is not None:
                    return fail
        elif kw == "propertyNames":
            for name in v:
                fail = self.check(name, arg, (*path, name))
                if fail is not None:
                    return fail
        return None

    def missing(self, name: str, s: dict[str, Any], path: tuple[str, ...]) -> _Fail:
        """A missing required property fails as ``null`` would against its own schema (whose
        message names it best), else as plainly missing."""
        sub = s.get("properties", {}).get(name)
        fail = self.check(None, sub, (*path, name)) if sub is not None else None
        return fail or _Fail(f"{'.'.join((*path, name))} is missing")

    def array_keyword(self, kw: str, arg: Any, v: list[Any], path: tuple[str, ...]) -> _Fail | None:
        if kw == "minItems":
            return None if len(v) >= arg else _Fail(None)
        if kw == "maxItems":
            return None if len(v) <= arg else _Fail(None)
        if kw == "uniqueItems":
            dup = arg and any(json_equal(v[i], v[j]) for i in range(len(v)) for j in range(i))
            return _Fail(None) if dup else None
        if kw in ("items", "prefixItems"):
            subs = [arg] * len(v) if kw == "items" else arg
            for i, (x, sub) in enumerate(zip(v, subs, strict=False)):
                fail = self.check(x, sub, (*path, str(i)))
                if fail is not None:
                    return fail
        if kw == "contains":
            return None if any(self.check(x, arg, path) is None for x in v) else _Fail(None)
        return None
