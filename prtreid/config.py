"""Typed configuration: frozen dataclasses built from plain dicts or YAML files.

Every component owns a frozen dataclass of its settings (``CropConfig``, ``ModelConfig``, ...).
:func:`from_dict` builds one from a mapping, recursing into nested dataclass fields and checking
types, so a typo or a wrong type fails with the file and the dotted key. Ray workers receive
``dataclasses.asdict(cfg)`` and rebuild the dataclass with :func:`from_dict`.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from prtreid.errors import ConfigError

T = TypeVar("T")


def _refuse_repeated_keys(node: yaml.Node | None) -> None:
    """Raise where a mapping of a composed YAML document gives one key twice (PyYAML would keep the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"key {key_node.value!r} is given twice",
                                                            key_node.start_mark)
                seen.add(key)
            _refuse_repeated_keys(value_node)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_repeated_keys(item)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with ``yaml.safe_load``, refusing repeated keys; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        _refuse_repeated_keys(yaml.compose(text, Loader=yaml.SafeLoader))  # nodes only: nothing is constructed
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a config file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], data: dict[str, Any] | None, source: str = "<dict>", prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, validating keys and value types.

    Args:
        cls: a dataclass type.
        data: the mapping; missing keys take the dataclass defaults.
        source: where the mapping came from (a file name), for error messages.
        prefix: dotted key prefix of ``data`` inside the source, for error messages.
    """
    if data is not None and not isinstance(data, Mapping):
        where = prefix.rstrip(".") or cls.__name__
        raise ConfigError(f"{source}: {where}: expected a mapping, got {type(data).__name__}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {prefix}{unknown[0]!s} (known: {', '.join(sorted(fields))})"
        )
    kwargs = {name: _coerce(hints[name], _over_default(fields[name], value), source, f"{prefix}{name}")
              for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {prefix.rstrip('.') or cls.__name__}: {exc}") from None


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base`` (nested dicts merge, others replace)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """Turn ``"model.backbone=resnet50"`` into ``{"model": {"backbone": "resnet50"}}`` (value YAML-parsed)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected KEY=VALUE with a dotted key")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: invalid YAML value ({exc})") from None
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def to_plain(obj: Any) -> Any:
    """Built-in types only: tuples become lists, paths strings, numpy/torch scalars numbers.

    What ``yaml.safe_dump`` and ``torch.load(weights_only=True)`` accept.
    """
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return obj.item()
    return obj


def _over_default(f: dataclasses.Field, value: Any) -> Any:
    """A mapping given for a field whose default is a dataclass instance, on top of that default.

    Missing keys then take the field's default (a preset such as ``TrackerConfig.sports()``), not
    the defaults of the field's class. The merge is one level deep: a dict field given is replaced.
    """
    if not isinstance(value, Mapping):
        return value
    if f.default_factory is not dataclasses.MISSING:
        default = f.default_factory()
    else:
        default = f.default
    if not dataclasses.is_dataclass(default) or isinstance(default, type):
        return value
    return {**{d.name: getattr(default, d.name) for d in dataclasses.fields(default) if d.init}, **value}


def _coerce(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, source, key)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{source}: {key}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):  # a default kept by _over_default
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        return from_dict(hint, value, source, f"{key}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{source}: {key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    return _coerce_scalar(hint, value, source, key)


_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
"""``1e-4``: YAML 1.1, so PyYAML, reads a number with an exponent but no dot as a string."""


def yaml_float(value: Any) -> Any:
    """``value`` as a float where it is a number written like ``1e-4`` (a string to PyYAML), else unchanged."""
    return float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()) else value


def _coerce_scalar(hint: Any, value: Any, source: str, key: str) -> Any:
    if hint is Any:
        return value
    if hint is float:
        value = yaml_float(value)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if hint is Path and isinstance(value, (str, Path)):
        return Path(value)
    name = getattr(hint, "__name__", str(hint))
    raise ConfigError(f"{source}: {key}: expected {name}, got {value!r}")
