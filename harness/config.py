"""Strict YAML and dataclass loading.

YAML is read with a safe loader that refuses duplicate keys (PyYAML silently keeps the last one),
and mappings are turned into dataclasses that refuse unknown keys and wrong types. Every error
names the file and the field.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from harness.errors import HarnessError

T = TypeVar("T")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with duplicate keys as errors and YAML 1.2 scalars where 1.1 surprises: only true/false (any case)
    are booleans, so `tags: no` or `--set lang=no` (Norwegian) stay strings instead of False; 1e-4 is a float."""


_BOOL = "tag:yaml.org,2002:bool"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
# YAML 1.2 floats also without a dot: 1e-4 is a float (YAML 1.1, PyYAML's default, reads it as the string "1e-4")
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                    list("-+0123456789"))


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})", key_node.start_mark
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML mapping strictly: duplicate keys and non-mapping documents are errors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HarnessError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start}); re-save it as UTF-8") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader derives from SafeLoader
    except yaml.YAMLError as e:
        msg = " ".join(str(e).split())
        raise HarnessError(f"{path}: invalid YAML: {msg}") from None
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against annotation `tp`, recursing into dataclasses, lists and dicts."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except HarnessError as e:
                errors.append(str(e))
        raise HarnessError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise HarnessError(f"{where}: {value!r} is not one of {', '.join(map(repr, allowed))}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise HarnessError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise HarnessError(f"{where}: expected a list, got {type(value).__name__}")
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise HarnessError(f"{where}: expected a mapping, got {type(value).__name__}")
        _, val_tp = typing.get_args(tp) or (Any, Any)
        return {k: _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type):
        if isinstance(value, bool) and tp is not bool:
            raise HarnessError(f"{where}: expected {_type_name(tp)}, got a boolean")
        if not isinstance(value, tp):
            raise HarnessError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[T], data: dict, where: str = "") -> T:
    """Build dataclass `cls` from `data`, refusing unknown keys, missing required keys and wrong types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        known = ", ".join(fields)
        raise HarnessError(f"{where or cls.__name__}: unknown key {unknown[0]!r} (known keys: {known})")
    kwargs = {}
    for name, f in fields.items():
        key_where = f"{where}.{name}" if where else name
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], key_where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise HarnessError(f"{key_where}: required key is missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where or cls.__name__)
    return obj


ADDED_OPTION = "added_option"  # dataclass field metadata key: see added_option()


_SAME = object()


def added_option(default: Any, legacy: Any = _SAME) -> Any:
    """A method config field added after artifacts were trained with the behaviour its `legacy` value keeps (by
    default: `default`): while it holds `legacy` it is left out of `to_dict` (hence of artifact config hashes,
    results.json's method variant and the recorded config), so artifacts and rows trained before the option existed
    keep their hashes; any other value is recorded and keyed like every field. A default changed later (an ablation
    chose another value) keeps `legacy` as the old behaviour, so the new default is recorded and old rows read as
    stale. Both must be immutable values (str, bool, number, None)."""
    return dataclasses.field(default=default, metadata={ADDED_OPTION: default if legacy is _SAME else legacy})


def dict_changes(a: dict, b: dict, at: str = "") -> list[tuple[str, object, object]]:
    """(dotted field, value in `a`, value in `b`) for every field where two nested config dicts differ, in the order
    the fields first appear (`a`'s, then `b`'s)."""
    out: list[tuple[str, object, object]] = []
    for k in dict.fromkeys([*a, *b]):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += dict_changes(x, y, f"{at}{k}.")
        elif x != y:
            out.append((f"{at}{k}", x, y))
    return out


def to_dict(obj: Any) -> Any:
    """JSON-ready form of a (nested) dataclass (`added_option` fields left out while at their legacy value)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not (ADDED_OPTION in f.metadata and getattr(obj, f.name) == f.metadata[ADDED_OPTION])}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items -> {KEY: value}; each value is read as YAML (8 -> int, 1e-4 -> float, [a, b] -> list,
    native -> str, true -> bool, no -> str: YAML 1.2 booleans as in load_yaml). Later items win."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise HarnessError(f"--set {item!r}: write KEY=VALUE, e.g. --set layer=0.5 or --set train.lr=1e-4")
        try:
            out[key.strip()] = yaml.load(raw, Loader=_StrictLoader) if raw.strip() else ""  # noqa: S506 - safe
        except yaml.YAMLError as e:
            raise HarnessError(f"--set {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return out
