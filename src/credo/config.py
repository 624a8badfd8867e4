"""Typed configuration: frozen dataclasses filled from layered YAML files and ``key=value`` overrides.

A config class is a dataclass whose fields all have a default and a one-line meaning, written as a
trailing comment (or ``field(metadata={"doc": ...})``)::

    @dataclass(frozen=True)
    class TrainConfig:
        lr: float = 5e-4  # Adam learning rate
        hidden: tuple[int, ...] = (64,)  # layer sizes

``load_config(TrainConfig, ["configs/qmix.yaml"], ["lr=1e-3"])`` merges a base dict, the YAML files
in order and the overrides (later wins), then checks every key and value against the annotations
before anything heavy runs. Errors are ``ConfigError`` naming the field, what it expects, the value
and where that value came from (``file:line`` or ``--set``).

Rules worth knowing:

* YAML is read with YAML 1.2 scalars: ``2e6``, ``1e-3`` and ``5E-4`` are floats (PyYAML's YAML 1.1
  would read them as strings), only ``true``/``false`` are booleans (``yes``/``on`` stay strings),
  ``1_000_000`` is an int, and dates stay strings. Duplicate keys in one mapping are an error.
* ``int`` takes whole numbers, including integral floats (``2e6`` -> 2000000); ``float`` takes ints;
  ``bool`` takes only true/false; ``str`` takes only strings, except that a ``--set`` value that
  does not fit is retried as its raw text (``name=2024`` gives ``"2024"`` to a ``str`` field).
* Mappings merge key by key across layers (nested config sections and dict fields such as
  ``env_kwargs``); any other value, lists included, is replaced whole. A dict field given in a
  layer replaces the class default; a nested section keeps the defaults of the fields it omits.
* Overrides take dotted keys for nested fields: ``net.hidden=[32]``, ``env_kwargs.sight=2``.
* A number field's allowed values go with its type: ``seeds: Annotated[int, Range(1)] = 1`` (or
  an alias such as ``PositiveInt``); a bound may name another field (``Range(ge="batch_size")``).
  Floats must be finite (no nan or inf) unless their ``Range`` says ``finite=False``. Like the
  types, ranges are checked when a config is loaded, not when a class is constructed directly.

This module imports only the standard library and PyYAML.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import difflib
import functools
import inspect
import io
import math
import os
import re
import textwrap
import tokenize
import types
import typing
from collections.abc import Iterable, Mapping, MutableMapping, MutableSequence, Sequence
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml

__all__ = [
    "ConfigError",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "Range",
    "UnitInterval",
    "describe",
    "field_docs",
    "from_dict",
    "load_config",
    "parse_override",
    "save_config",
    "to_dict",
]

OVERRIDE_SOURCE = "--set"  # the source named for values given as key=value overrides
BASE_SOURCE = "base"  # the source named for values from load_config's base argument
_OVERRIDE_EXAMPLE = (
    "lr=1e-3, double_q=false, hidden=[64,64], mixer=null, env_kwargs={sight: 2}, net.hidden=[32]"
)


class ConfigError(ValueError):
    """A config that cannot be built; the message names the field, the value and its source."""

    def __init__(self, message: str, *, field: str | None = None, source: str | None = None):
        super().__init__(message)
        self.field = field  # dotted path of the offending field, when there is one
        self.source = source  # file (file:line) or "--set" the offending value came from


# --------------------------------------------------------------------------------------------
# Allowed ranges


Bound = int | float | str | None  # a number, or the name of another field of the same class


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number field allows, written with its type: ``Annotated[int, Range(1)]``.

    ``ge``/``le`` are inclusive bounds and ``gt``/``lt`` exclusive ones, so ``Range(0, 1)`` is
    [0, 1] and ``Range(gt=0, le=1)`` is (0, 1]. A bound given as a string names another field of
    the same class and is checked once the whole config is built (``Range(ge="batch_size")``).
    Floats must be finite unless ``finite=False``. ``why`` ends the error message: say what the
    limit protects, so that the user knows whether to change the value or the limit.
    """

    ge: Bound = None
    le: Bound = None
    gt: Bound = None
    lt: Bound = None
    finite: bool = True
    why: str = ""

    def __post_init__(self):
        if (self.ge is not None and self.gt is not None) or (self.le is not None and self.lt is not None):
            raise TypeError("give a Range at most one lower bound (ge or gt) and one upper (le or lt)")

    def text(self) -> str:
        """The range as people write it: ``>= 1``, ``> 0``, ``in [0, 1]``, ``in (0, 1]``."""
        low = (">=", "[", self.ge) if self.ge is not None else (">", "(", self.gt)
        high = ("<=", "]", self.le) if self.le is not None else ("<", ")", self.lt)
        if low[2] is not None and high[2] is not None:
            return f"in {low[1]}{_bound_text(low[2])}, {_bound_text(high[2])}{high[1]}"
        for op, _, bound in (low, high):
            if bound is not None:
                return f"{op} {_bound_text(bound)}"
        return ""

    def problem(self, value: Any, fields: Mapping[str, Any] | None = None) -> str:
        """Why ``value`` is out of range ("" if it is not). Bounds naming fields are checked only
        when ``fields`` (the built config's values) is given, the others only when it is not."""
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return ""  # None of an optional field
        if isinstance(value, float) and math.isnan(value):
            return ""  # a nan that this range allows (finite=False); finite ones never get here
        checks = (
            (self.ge, lambda b: value >= b, "at least"),
            (self.gt, lambda b: value > b, "more than"),
            (self.le, lambda b: value <= b, "at most"),
            (self.lt, lambda b: value < b, "less than"),
        )
        for bound, ok, words in checks:
            if bound is None or isinstance(bound, str) != (fields is not None):
                continue
            limit = fields.get(bound) if isinstance(bound, str) else bound
            if limit is None or ok(limit):
                continue
            named = f"{bound} ({_bound_text(limit)})" if isinstance(bound, str) else _bound_text(bound)
            return f"must be {words} {named}"
        return ""


def _bound_text(bound: Bound) -> str:
    if isinstance(bound, int) and not isinstance(bound, bool) and abs(bound) >= 10_000:
        return f"{bound:_}"  # 2_000_000_000: readable, and YAML and --set take it as written
    return str(bound)


def _ranges(marks: Iterable) -> list[Range]:
    return [m for m in marks if isinstance(m, Range)]


PositiveInt = Annotated[int, Range(1)]  # a count or an interval: 1 or more
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(gt=0)]  # a learning rate, a scale
NonNegativeFloat = Annotated[float, Range(0)]  # a coefficient that 0 turns off
UnitInterval = Annotated[float, Range(0, 1)]  # a probability, a discount, a mixing weight


# --------------------------------------------------------------------------------------------
# YAML with YAML 1.2 scalars


_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_DIGITS = r"[0-9](?:_?[0-9])*"
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(rf"^(?:[-+]?{_DIGITS}|[-+]?0x[0-9a-fA-F](?:_?[0-9a-fA-F])*)$")
_FLOAT_RE = re.compile(
    rf"^(?:[-+]?(?:(?:{_DIGITS}\.(?:{_DIGITS})?|\.{_DIGITS})(?:[eE][-+]?[0-9]+)?|{_DIGITS}[eE][-+]?[0-9]+)"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_RESOLVERS = [
    (_BOOL_TAG, _BOOL_RE, list("tTfF")),
    (_INT_TAG, _INT_RE, list("-+0123456789")),
    (_FLOAT_TAG, _FLOAT_RE, list("-+0123456789.")),
]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars (see the module docstring) that rejects duplicate keys."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag in ("tag:yaml.org,2002:null", _MERGE_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
for _tag, _regex, _first in _RESOLVERS:
    _Loader.add_implicit_resolver(_tag, _regex, _first)


def _construct_int(loader, node):
    text = loader.construct_scalar(node)
    try:
        clean = text.replace("_", "")
        return int(clean, 0) if "x" in clean.lower() else int(clean, 10)
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot read {text!r} as an int", node.start_mark
        ) from None


def _construct_float(loader, node):
    text = loader.construct_scalar(node)
    clean = text.replace("_", "").lower()
    special = {".inf": "inf", "+.inf": "inf", "-.inf": "-inf", ".nan": "nan"}
    try:
        return float(special.get(clean, clean))
    except ValueError:
        raise yaml.constructor.ConstructorError(
            None, None, f"cannot read {text!r} as a float", node.start_mark
        ) from None


_Loader.add_constructor(_INT_TAG, _construct_int)
_Loader.add_constructor(_FLOAT_TAG, _construct_float)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that also quotes strings our loader would read as something else (e.g. '1e3')."""


for _tag, _regex, _first in _RESOLVERS:
    _Dumper.add_implicit_resolver(_tag, _regex, _first)


def _yaml_load(text: str) -> tuple[Any, yaml.Node | None]:
    """The document in ``text`` and its node tree (for line numbers); raises yaml.YAMLError."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, node


def _key_lines(node, prefix: tuple, out: dict[tuple, int]) -> dict[tuple, int]:
    """Maps the path of every key in nested mappings to its 1-based line."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _MERGE_TAG:
                path = prefix + (key_node.value,)
                out[path] = key_node.start_mark.line + 1
                _key_lines(value_node, path, out)
    return out


def _has_text(value: Any, chars: str) -> bool:
    if isinstance(value, str):
        return any(c in value for c in chars)
    if isinstance(value, Mapping):
        return any(_has_text(k, chars) or _has_text(v, chars) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_text(v, chars) for v in value)
    return False


def _yaml_text(value: Any, flow: bool = False) -> str:
    # PyYAML writes U+0085 raw in quoted scalars with allow_unicode and reads it back as a line
    # break; escape everything non-ASCII in that (rare) case.
    unicode = not _has_text(value, "\x85\u2028\u2029")
    text = yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=unicode,
                     default_flow_style=flow, width=10**9)  # fmt: skip
    if flow:
        text = text.strip()
        if text.endswith("\n..."):
            text = text[:-4].strip()
        elif text.endswith("..."):
            text = text[:-3].strip()
    return text


# --------------------------------------------------------------------------------------------
# Class introspection


def _require_config_class(cls) -> None:
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"expected a dataclass type, got {cls!r}")


def _init_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


@functools.cache
def _hints(cls) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)  # keeps the Ranges of Annotated
    except Exception as err:  # noqa: BLE001 - any failure here is the class author's to fix
        raise TypeError(f"cannot resolve the type annotations of {cls.__qualname__}: {err}") from err


_TOOL_COMMENT = re.compile(r"\s*#\s*(?:noqa|type:|pragma|fmt:|pyright:|mypy:).*$", re.IGNORECASE)


def _clean_comment(comment: str) -> str:
    text = _TOOL_COMMENT.sub("", comment)
    text = text.lstrip("#").strip()
    return "" if _TOOL_COMMENT.match("# " + text) else text


@functools.cache
def _own_source_info(cls) -> tuple[dict[str, str], dict[str, str]]:
    """(trailing comment, annotation text) per field assigned in ``cls``'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return {}, {}
    classdef = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    if classdef is None:
        return {}, {}
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and tok.line[: tok.start[1]].strip():
                comments[tok.start[0]] = tok.string  # only comments after code on their line
    except (tokenize.TokenError, SyntaxError):
        comments = {}
    docs: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for stmt in classdef.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        name = stmt.target.id
        text = ast.get_source_segment(source, stmt.annotation)
        if text:
            annotations[name] = " ".join(text.split())
        # The comment after the statement's last line, else one after any of its lines (the
        # first line of a multi-line default, say).
        lines = [stmt.end_lineno or stmt.lineno, *range(stmt.lineno, (stmt.end_lineno or stmt.lineno))]
        for line in lines:
            doc = _clean_comment(comments.get(line, ""))
            if doc:
                docs[name] = doc
                break
    return docs, annotations


def _source_info(cls) -> tuple[dict[str, str], dict[str, str]]:
    docs: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # subclasses override what they redeclare
        if dataclasses.is_dataclass(klass):
            own_docs, own_annotations = _own_source_info(klass)
            for name, text in own_annotations.items():
                annotations[name] = text
                docs.pop(name, None)
            docs.update(own_docs)
    return docs, annotations


def field_docs(cls) -> dict[str, str]:
    """The one-line meaning of every field of the dataclass ``cls`` ("" where it has none).

    Read from the trailing ``# comment`` on the field's line in the class source (for a default
    spread over several lines, the comment after its last line or, failing that, any of them),
    else from ``field(metadata={"doc": ...})``.
    """
    _require_config_class(cls)
    docs, _ = _source_info(cls)
    out = {}
    for f in dataclasses.fields(cls):
        out[f.name] = docs.get(f.name) or str(f.metadata.get("doc", "") or "").strip()
    return out


def _type_text(tp) -> str:
    if tp is type(None):
        return "None"
    if get_origin(tp) is Annotated:  # int >= 1, float in [0, 1]
        inner, *marks = get_args(tp)
        return " ".join([_type_text(inner), *(t for t in (r.text() for r in _ranges(marks)) if t)])
    if _has_range(tp):  # spell the ranges inside: tuple[int >= 1, ...], float >= 0 | None
        args = [_type_text(a) if a is not Ellipsis else "..." for a in get_args(tp)]
        if get_origin(tp) in (Union, types.UnionType):
            return " | ".join(args)
        return f"{getattr(get_origin(tp), '__name__', get_origin(tp))}[{', '.join(args)}]"
    if isinstance(tp, type) and not get_args(tp):
        return tp.__name__
    return re.sub(r"\btyping\.|\bcollections\.abc\.|\bpathlib\.", "", str(tp)).replace("NoneType", "None")


def _has_range(tp) -> bool:
    """Whether a Range is anywhere in the type (``int >= 1``, ``tuple[int >= 1, ...] | None``)."""
    if get_origin(tp) is Annotated:
        return bool(_ranges(get_args(tp)[1:])) or _has_range(get_args(tp)[0])
    return any(_has_range(a) for a in get_args(tp) if a is not Ellipsis)


def _annotation_text(cls, name: str) -> str:
    tp = _hints(cls)[name]
    if _has_range(tp):  # the range itself, not the alias (PositiveInt) or Annotated[...] written
        return _type_text(tp)
    _, annotations = _source_info(cls)
    return annotations.get(name) or _type_text(tp)


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


# --------------------------------------------------------------------------------------------
# Checking values


class _Mismatch(Exception):
    """A value that does not fit a type; ``detail`` says why, when more can be said."""

    def __init__(self, detail: str = ""):
        super().__init__(detail)
        self.detail = detail


@dataclasses.dataclass
class _Context:
    """Where values came from: path -> (source, line) for merged layers, and raw override text."""

    fallback: str = ""
    provenance: dict[tuple, tuple[str, int | None]] = dataclasses.field(default_factory=dict)
    raw: dict[tuple, str] = dataclasses.field(default_factory=dict)

    def source(self, path: tuple) -> str:
        for i in range(len(path), 0, -1):
            hit = self.provenance.get(path[:i])
            if hit is not None:
                return f"{hit[0]}:{hit[1]}" if hit[1] is not None else hit[0]
        names = []
        for key, (name, _) in self.provenance.items():
            if key[: len(path)] == path and name not in names:
                names.append(name)
        return ", ".join(names) or self.fallback


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _show(value: Any, limit: int = 80) -> str:
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, (list, tuple)):
        return "list"
    return type(value).__name__


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


def _coerce(tp, value: Any, path: tuple, ctx: _Context, default: Any = dataclasses.MISSING) -> Any:
    """``value`` converted to ``tp``; raises _Mismatch (or ConfigError from a nested section)."""
    if tp is Any or tp is object:
        return value
    origin, args = get_origin(tp), get_args(tp)
    if origin is Annotated:
        return _coerce_in_range(args[0], _ranges(args[1:]), value, path, ctx, default)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _coerce(options[0], value, path, ctx, default)
        for option in options:
            try:
                return _coerce(option, value, path, ctx, default)
            except (_Mismatch, ConfigError):
                continue
        raise _Mismatch()
    if origin is Literal:
        for allowed in args:
            if type(value) is type(allowed) and value == allowed:
                return allowed
        raise _Mismatch("must be one of " + ", ".join(_show(a) for a in args))
    if tp is type(None) or tp is None:
        if value is None:
            return None
        raise _Mismatch()
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            return _build(tp, value, path, ctx, base=default if isinstance(default, tp) else None)
        raise _Mismatch("give a mapping of its fields")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch("write true or false")
    if tp is int:
        if isinstance(value, bool):
            raise _Mismatch("write a number, not true/false")
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if value.is_integer():
                return int(value)
            raise _Mismatch("not a whole number (2e6 or 2000000 is fine, 2.5 is not)")
        raise _Mismatch()
    if tp is float:
        number = _float(value)
        if not math.isfinite(number):  # nan and inf only where a Range(finite=False) allows them
            raise _Mismatch("write a finite number (nan and inf are not allowed here)")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if value is None or isinstance(value, (bool, int, float)):
            raise _Mismatch("put it in quotes to make it a string")
        raise _Mismatch()
    if isinstance(tp, type) and issubclass(tp, PurePath):
        if isinstance(value, (str, PurePath)):
            return tp(value)
        raise _Mismatch()
    if origin is tuple or tp is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch("give a list, e.g. [64, 64]")
        if not args:
            return tuple(value)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_items(args[0], value, path, ctx))
        if args == ((),):
            args = ()
        if len(value) != len(args):
            raise _Mismatch(
                f"needs exactly {len(args)} item{'s' if len(args) != 1 else ''}, got {len(value)}"
            )
        return tuple(_item(a, x, i, path, ctx) for i, (a, x) in enumerate(zip(args, value)))
    if origin in (list, Sequence, MutableSequence) or tp in (list, Sequence, MutableSequence):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch("give a list, e.g. [1, 2]")
        items = _items(args[0], value, path, ctx) if args else list(value)
        return tuple(items) if (origin or tp) is Sequence else list(items)
    if origin in (dict, Mapping, MutableMapping) or tp in (dict, Mapping, MutableMapping):
        if not isinstance(value, Mapping):
            raise _Mismatch("give a mapping, e.g. {sight: 2}")
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        out = {}
        for key, item in value.items():
            try:
                checked_key = _coerce(key_type, key, path, ctx)
            except _Mismatch as err:
                raise _Mismatch(f"key {_show(key)} is not {_type_text(key_type)}") from err
            try:
                out[checked_key] = _coerce(value_type, item, path + (key,), ctx)
            except _Mismatch as err:
                raise _Mismatch(_item_detail(f"value of {_show(key)}", item, value_type, err)) from None
        return out
    if get_args(tp) or not isinstance(tp, type):
        raise TypeError(f"credo.config cannot check values of type {_type_text(tp)}")
    if isinstance(value, tp):
        return value
    raise _Mismatch()


def _float(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise _Mismatch("write a number, not true/false" if isinstance(value, bool) else "")


class _OutOfRange(_Mismatch):
    """A value of the right type outside its field's Range."""

    def __init__(self, rng: Range, detail: str):
        super().__init__(detail)
        self.range = rng


def _coerce_in_range(tp, ranges: list[Range], value: Any, path: tuple, ctx: _Context, default: Any) -> Any:
    if tp is float and not all(r.finite for r in ranges):
        out = _float(value)  # this field allows nan and inf
    else:
        out = _coerce(tp, value, path, ctx, default)
    for rng in ranges:
        problem = rng.problem(out)
        if problem:
            raise _OutOfRange(rng, problem)
    return out


def _item_detail(what: str, item: Any, tp, err: _Mismatch) -> str:
    return f"{what} is {_show(item, 40)} ({_kind(item)}), not {_type_text(tp)}" + (
        f": {err.detail}" if err.detail else ""
    )


def _item(tp, item: Any, i: int, path: tuple, ctx: _Context) -> Any:
    try:
        return _coerce(tp, item, path + (i,), ctx)
    except _Mismatch as err:
        raise _Mismatch(_item_detail(f"item {i}", item, tp, err)) from None


def _items(tp, values: Iterable, path: tuple, ctx: _Context) -> list:
    return [_item(tp, x, i, path, ctx) for i, x in enumerate(values)]


def _initials(name: str) -> str:
    return "".join(part[:1] for part in name.split("_") if part) if "_" in name.strip("_") else ""


def _suggest(key: str, names: list[str]) -> list[str]:
    """Field names close to ``key``: same up to case/dashes, initials (learning_rate ~ lr), spelling."""
    norm = key.lower().replace("-", "_")
    out: list[str] = []
    for name in names:
        low = name.lower()
        if low == norm or (_initials(norm) and _initials(norm) == low) or (_initials(low) == norm):
            out.append(name)
    out += difflib.get_close_matches(norm, names, n=3, cutoff=0.6)
    if len(norm) >= 3:
        out += [n for n in names if norm in n.lower() or (len(n) >= 3 and n.lower() in norm)]
    return list(dict.fromkeys(out))[:3]


# Other codebases' names for our fields (EPyMARL/pymarl YAML keys, JaxMARL's upper-case config
# keys): an unknown field with one of these names is told the field it means, where the config
# has it. Names that mean the same in both (batch_size, buffer_size, gamma, lr) need no entry.
FOREIGN_NAMES = {
    "t_max": ("total_env_steps", "EPyMARL's name"),
    "batch_size_run": ("n_envs", "EPyMARL's name"),
    "test_nepisode": ("test_episodes", "EPyMARL's name"),
    "save_model_interval": ("save_interval", "EPyMARL's name"),
    "runner_log_interval": ("log_interval", "EPyMARL's name"),
    "epsilon_anneal_time": ("epsilon_anneal_steps", "EPyMARL's name"),
    "grad_norm_clip": ("grad_clip", "EPyMARL's name"),
    "rnn_hidden_dim": ("hidden_dim", "EPyMARL's name"),
    "use_cuda": (None, "EPyMARL's switch: credo runs on whatever device JAX finds"),
    "total_timesteps": ("total_env_steps", "JaxMARL's name"),
    "num_envs": ("n_envs", "JaxMARL's name"),
    "num_seeds": ("seeds", "JaxMARL's name"),
    "update_epochs": ("epochs", "JaxMARL's name"),
    "num_minibatches": ("minibatches", "JaxMARL's name"),
    "max_grad_norm": ("grad_clip", "JaxMARL's name"),
    "eps_start": ("epsilon_start", "JaxMARL's name"),
    "eps_finish": ("epsilon_finish", "JaxMARL's name"),
    "eps_decay": ("epsilon_anneal_steps", "JaxMARL's name for a fraction of the budget"),
    "buffer_batch_size": ("batch_size", "JaxMARL's name"),
}


def _foreign_hint(key: str, names: list[str]) -> str:
    """`` (EPyMARL's name; here it is 'n_envs')`` for another codebase's name, or an empty string."""
    field, source = FOREIGN_NAMES.get(key.lower(), ("", ""))
    if field is None:
        return f" ({source})"
    return f" ({source}; here it is '{field}')" if field in names else ""


def _unknown_field(cls, key: Any, path: tuple, ctx: _Context) -> ConfigError:
    names = list(_init_fields(cls))
    parent = path[:-1]
    where = ctx.source(path)
    shown = _dotted(parent + (key,)) if isinstance(key, str) else _dotted(parent) + f"[{key!r}]"
    message = f"{_prefix(where)}unknown field '{shown}'."
    foreign = _foreign_hint(key, names) if isinstance(key, str) and not parent else ""
    if foreign:
        return ConfigError(message[:-1] + foreign + ".", field=shown, source=where)
    close = _suggest(key, names) if isinstance(key, str) else []
    if close:
        quoted = [f"'{_dotted(parent + (c,))}'" for c in close]
        message += f" Did you mean {quoted[0] if len(quoted) == 1 else ', '.join(quoted[:-1]) + ' or ' + quoted[-1]}?"
    else:
        section = f" of '{_dotted(parent)}'" if parent else ""
        message += f" The fields{section} are: {', '.join(names)}."
    if isinstance(key, str) and "." in key and key.split(".", 1)[0] in names:
        head, rest = key.split(".", 1)
        message += f" In a YAML file, nest it: '{head}: {{{rest}: ...}}'."
    return ConfigError(message, field=shown, source=where)


def _check_field(cls, f: dataclasses.Field, value: Any, path: tuple, ctx: _Context, base: Any) -> Any:
    tp = _hints(cls)[f.name]
    default = getattr(base, f.name) if base is not None else _default_of(f)
    try:
        return _coerce(tp, value, path, ctx, default)
    except _Mismatch as err:
        raw = ctx.raw.get(path)
        if raw is not None:  # a --set value that YAML read as something else: try its text
            try:
                return _coerce(tp, raw, path, ctx, default)
            except (_Mismatch, ConfigError):
                pass
        where = ctx.source(path)
        doc = field_docs(cls).get(f.name, "")
        named = f"{_prefix(where)}field '{_dotted(path)}'{f' ({doc})' if doc else ''}"
        if isinstance(err, _OutOfRange):  # the type is right: say the range, and why it is there
            message = f"{named} must be {err.range.text()}, got {_show(value)}" + _why(err.range)
        else:
            message = (
                f"{named} expects {_annotation_text(cls, f.name)}, got {_show(value)} ({_kind(value)})"
                + (f": {err.detail}" if err.detail else "")
            )
        raise ConfigError(message, field=_dotted(path), source=where) from None


def _why(rng: Range) -> str:
    return f" ({rng.why})" if rng.why else ""


def _check_field_bounds(cls, instance: Any, path: tuple, ctx: _Context) -> None:
    """Checks the bounds that name other fields (``buffer_size >= batch_size``), on the built config."""
    values = {name: getattr(instance, name) for name in _init_fields(cls)}
    for name, tp in _hints(cls).items():
        if name not in values or get_origin(tp) is not Annotated:
            continue
        for rng in _ranges(get_args(tp)[1:]):
            for bound in (rng.ge, rng.gt, rng.le, rng.lt):
                if isinstance(bound, str) and bound not in values:
                    raise TypeError(f"{cls.__qualname__}.{name}: Range bound {bound!r} is not a field")
            problem = rng.problem(values[name], values)
            if problem:
                raise _bound_error(cls, name, values[name], problem, rng, path, ctx)


def _bound_error(cls, name: str, value: Any, problem: str, rng: Range, path: tuple, ctx: _Context):
    where = ctx.source(path + (name,))
    doc = field_docs(cls).get(name, "")
    # The other field may be the one the user changed: say where its value came from too.
    notes = [rng.why] if rng.why else []
    for other in (rng.ge, rng.gt, rng.le, rng.lt):
        other_source = ctx.source(path + (other,)) if isinstance(other, str) else ""
        if other_source and other_source != where:
            notes.append(f"{other} is from {other_source}")
    return ConfigError(
        f"{_prefix(where)}field '{_dotted(path + (name,))}'{f' ({doc})' if doc else ''} {problem}, "
        f"got {_show(value)}" + (f" ({'; '.join(notes)})" if notes else ""),
        field=_dotted(path + (name,)),
        source=where,
    )


def _build(cls, data: Any, path: tuple, ctx: _Context, base: Any = None):
    if not isinstance(data, Mapping):
        where = ctx.source(path)
        what = f"section '{_dotted(path)}'" if path else f"a {cls.__name__}"
        raise ConfigError(
            f"{_prefix(where)}{what} must be a mapping of field: value, got {_show(data)} ({_kind(data)})",
            field=_dotted(path) or None,
            source=where,
        )
    fields = _init_fields(cls)
    values = {}
    for key, value in data.items():
        f = fields.get(key) if isinstance(key, str) else None
        if f is None:
            raise _unknown_field(cls, key, path + (key,), ctx)
        values[key] = _check_field(cls, f, value, path + (key,), ctx, base)
    if base is None:
        missing = [n for n, f in fields.items() if n not in values and _default_of(f) is dataclasses.MISSING]
        if missing:
            where = ctx.source(path)
            names = ", ".join(f"'{_dotted(path + (n,))}'" for n in missing)
            raise ConfigError(f"{_prefix(where)}missing required field {names}", source=where)
    try:
        instance = dataclasses.replace(base, **values) if base is not None else cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # checks in the class's __post_init__
        where = ctx.source(path)
        section = f" ('{_dotted(path)}')" if path else ""
        raise ConfigError(f"{_prefix(where)}{cls.__name__}{section}: {err}", source=where) from err
    _check_field_bounds(cls, instance, path, ctx)
    return instance


def from_dict(cls, data: Mapping[str, Any], source: str = ""):
    """Builds the config dataclass ``cls`` from ``data``, checking every key and value.

    ``source`` (a file name, "--set", ...) is named in error messages. Fields ``data`` leaves out
    keep their defaults; nested config sections take mappings and are checked the same way.
    """
    _require_config_class(cls)
    return _build(cls, data, (), _Context(fallback=source))


# --------------------------------------------------------------------------------------------
# Overrides, files and layering

_KEY_PART = re.compile(r"^[^\s.=]+$")


def _split_override(text: str) -> tuple[str, str]:
    form = f"expected key=value, for example {_OVERRIDE_EXAMPLE}"
    if not isinstance(text, str):
        raise ConfigError(
            f"{OVERRIDE_SOURCE}: override {text!r} is not a string; {form}", source=OVERRIDE_SOURCE
        )
    if "=" not in text:
        raise ConfigError(f"{OVERRIDE_SOURCE}: override {text!r} has no '='; {form}", source=OVERRIDE_SOURCE)
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(
            f"{OVERRIDE_SOURCE}: override {text!r} has an empty key; {form}", source=OVERRIDE_SOURCE
        )
    if not all(_KEY_PART.match(part) for part in key.split(".")):
        raise ConfigError(
            f"{OVERRIDE_SOURCE}: override {text!r} has a malformed key {key!r} (dotted field names, no "
            f"spaces); {form}",
            source=OVERRIDE_SOURCE,
        )
    return key, value.strip()


def _parse_value(key: str, raw: str) -> Any:
    try:
        value, _ = _yaml_load(raw)
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            f"{OVERRIDE_SOURCE}: cannot read the value of '{key}' ({raw!r}) as YAML: {problem}. "
            f"Values are YAML, for example {_OVERRIDE_EXAMPLE}",
            field=key,
            source=OVERRIDE_SOURCE,
        ) from None
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with the value read as YAML (1.2 scalars).

    ``lr=1e-3`` gives a float, ``double_q=false`` a bool, ``hidden=[64,64]`` a list, ``mixer=null``
    None and ``env_kwargs={sight: 2}`` a dict. Keys may be dotted (``net.hidden=[32]``).
    """
    key, raw = _split_override(text)
    return key, _parse_value(key, raw)


class _Layers:
    """The merged data of all layers, with the source of each value and raw override text."""

    def __init__(self):
        self.data: dict = {}
        self.provenance: dict[tuple, tuple[str, int | None]] = {}
        self.raw: dict[tuple, str] = {}

    def _forget(self, path: tuple) -> None:
        n = len(path)
        for book in (self.provenance, self.raw):
            for key in [k for k in book if k[:n] == path]:
                del book[key]

    def merge(self, src: Mapping, source: str, lines: Mapping[tuple, int] | None = None) -> None:
        self._merge(self.data, src, (), source, lines or {})

    def _merge(self, dst: dict, src: Mapping, prefix: tuple, source: str, lines: Mapping[tuple, int]):
        for key, value in src.items():
            path = prefix + (key,)
            here = (source, lines.get(path))
            if isinstance(value, Mapping):
                if not isinstance(dst.get(key), dict):
                    self._forget(path)
                    dst[key] = {}
                    self.provenance[path] = here
                self._merge(dst[key], value, path, source, lines)
            else:
                self._forget(path)
                dst[key] = copy.deepcopy(value)
                self.provenance[path] = here


def _missing_file_message(path: Path) -> str:
    message = f"config file not found: {path}"
    parent = path.parent if str(path.parent) else Path(".")
    if not path.suffix and path.with_suffix(".yaml").is_file():
        return message + f". Did you mean {path.with_suffix('.yaml')}?"
    try:
        candidates = sorted(p.name for p in parent.iterdir() if p.suffix in (".yaml", ".yml"))
    except OSError:
        return message
    close = difflib.get_close_matches(path.name, candidates, n=3, cutoff=0.6)
    if close:
        message += ". Did you mean " + " or ".join(str(parent / c) for c in close) + "?"
    elif candidates:
        message += f". Files in {parent}: {', '.join(candidates)}"
    return message


def _read_file(path: str | Path) -> tuple[Mapping, dict[tuple, int]]:
    label = str(path)
    file = Path(path).expanduser()
    if not file.is_file():
        if file.exists():
            raise ConfigError(f"config path is not a file: {label}", source=label)
        raise ConfigError(_missing_file_message(file), source=label)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{label}: cannot read the config file: {err}", source=label) from None
    try:
        data, node = _yaml_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        what = " ".join(x for x in (err.context, err.problem) if x)
        raise ConfigError(f"{where}: invalid YAML: {what}", source=where) from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{label}: invalid YAML: {err}", source=label) from None
    if data is None:
        return {}, {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{label}: the top level must be a mapping of field: value (like 'lr: 5e-4'), "
            f"got {_kind(data)} {_show(data, 40)}",
            source=label,
        )
    return data, _key_lines(node, (), {})


def load_config(
    cls,
    files: Iterable[str | Path] = (),
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
):
    """Merges ``base``, then each YAML file, then each ``key=value`` override, and builds ``cls``.

    Later layers win; mappings (nested sections, dict fields) merge key by key, anything else is
    replaced. Every error is a ConfigError naming the source (``file:line`` or ``--set``) of the
    offending value. ``base`` may also be a config instance.
    """
    _require_config_class(cls)
    if isinstance(files, (str, PurePath)):
        files = [files]
    if isinstance(overrides, str):
        overrides = [overrides]
    parsed = []
    for text in overrides:  # malformed overrides fail before any file is read
        key, raw = _split_override(text)
        parsed.append((key, raw, _parse_value(key, raw)))
    layers = _Layers()
    if base is not None:
        if dataclasses.is_dataclass(base) and not isinstance(base, type):
            base = to_dict(base)
        if not isinstance(base, Mapping):
            raise TypeError(f"base must be a mapping or a config instance, got {type(base).__name__}")
        layers.merge(_to_plain(base), BASE_SOURCE)
    for file in files:
        data, lines = _read_file(file)
        layers.merge(data, str(file), lines)
    for key, raw, value in parsed:
        parts = tuple(key.split("."))
        nested: Any = value
        for part in reversed(parts[1:]):
            nested = {part: nested}
        layers.merge({parts[0]: nested}, OVERRIDE_SOURCE)
        if not isinstance(value, Mapping):
            layers.raw[parts] = raw
    return _build(cls, layers.data, (), _Context(provenance=layers.provenance, raw=layers.raw))


# --------------------------------------------------------------------------------------------
# Output


def _to_plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {name: _to_plain(getattr(value, name)) for name in _init_fields(type(value))}
    if isinstance(value, Mapping):
        return {key: _to_plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(item) for item in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def to_dict(cfg) -> dict[str, Any]:
    """The config as plain data in field order: nested configs become dicts, tuples lists."""
    if not (dataclasses.is_dataclass(cfg) and not isinstance(cfg, type)):
        raise TypeError(f"expected a config dataclass instance, got {type(cfg).__name__}")
    return _to_plain(cfg)


def save_config(cfg, path: str | Path) -> Path:
    """Writes ``to_dict(cfg)`` as YAML (fields in declaration order); ``load_config`` reads it back.

    Atomically (a temporary file, then a rename): a run's config.yaml, rewritten when a resume
    extends its budget, is never left half-written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(_yaml_text(to_dict(cfg)), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _describe_rows(cls, prefix: str, base: Any, rows: list[tuple[str, str, str, str]]) -> None:
    docs = field_docs(cls)
    hints = _hints(cls)
    for name, f in _init_fields(cls).items():
        default = getattr(base, name) if base is not None else _default_of(f)
        tp = hints[name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp) and isinstance(default, tp):
            _describe_rows(tp, f"{prefix}{name}.", default, rows)
            continue
        shown = "(required)" if default is dataclasses.MISSING else _yaml_text(_to_plain(default), flow=True)
        rows.append((prefix + name, _annotation_text(cls, name), shown, docs.get(name, "")))


def describe(cls) -> str:
    """A table of every field (nested sections as dotted names): name, type, default, meaning."""
    _require_config_class(cls)
    rows: list[tuple[str, str, str, str]] = []
    _describe_rows(cls, "", None, rows)
    header = ("field", "type", "default", "meaning")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, tuple("-" * len(h) for h in header), *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])
    doc = inspect.cleandoc(cls.__doc__ or "")
    title = cls.__name__
    if doc and not doc.startswith(cls.__name__ + "("):  # not the signature dataclass writes
        title += ": " + doc.splitlines()[0]
    return "\n".join([title, *(line.rstrip() for line in lines)])
