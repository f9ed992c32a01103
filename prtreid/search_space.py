"""Hyper-parameter search spaces as data: load, validate, convert to Optuna, apply to a config.

A space file (``search_spaces/*.yaml``) maps dotted config keys to parameter specs::

    loss.team_weight: {type: float, low: 0.01, high: 1.0, log: true, default: 0.1}
    tracker.max_age:  {type: int, low: 10, high: 300, log: true, default: 300}
    tracker.team_gating: {type: categorical, choices: [true, false], default: true}

Keys are paths into a root config dataclass (:class:`~prtreid.train.config.ExperimentConfig` for
training spaces, :class:`~prtreid.pipeline.video.PipelineConfig` for tracker spaces). Loading checks
every key against the dataclass fields and every bound, default and choice against the field's own
type and validation (a value is applied to the root's default config and the config rebuilt), so a
typo or an out-of-domain bound fails at load time with the file and the key, not hours into a sweep.
This module has no Ray in it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from prtreid.config import from_dict, load_yaml, yaml_float
from prtreid.errors import ConfigError

T = TypeVar("T")
ParamType = Literal["float", "int", "categorical"]
_INT_CHECK_ALL = 512
"""Integer ranges with fewer values than this have every value checked against the field."""
_SPEC_KEYS = frozenset({"type", "low", "high", "log", "step", "choices", "default"})
_SCALARS = (bool, int, float, str, type(None))


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    Attributes:
        key: dotted path of the config field, e.g. ``loss.team_weight``.
        type: ``float``, ``int`` or ``categorical``.
        low, high: inclusive bounds (``float``/``int``).
        log: sample on a log scale (``low`` must be positive).
        step: optional quantisation step (``float``/``int``; not with ``log`` for floats).
        choices: the values of a ``categorical`` parameter (scalars).
        default: the value of the baseline trial (``None``: the baseline samples it).
    """

    key: str
    type: ParamType
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    default: Any = None

    def distribution(self) -> BaseDistribution:
        """The Optuna distribution of this parameter."""
        if self.type == "float":
            return FloatDistribution(float(self.low), float(self.high), log=self.log,
                                     step=None if self.step is None else float(self.step))
        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return CategoricalDistribution(self.choices)

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a point of this parameter's distribution."""
        if self.type == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        return self.step is None or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step))


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space over the fields of ``root`` (a config dataclass type)."""

    params: tuple[Param, ...]
    root: type
    source: str = "<dict>"

    @property
    def keys(self) -> tuple[str, ...]:
        """The dotted keys, in file order."""
        return tuple(p.key for p in self.params)

    def distributions(self) -> dict[str, BaseDistribution]:
        """``{key: optuna distribution}`` (the ``space`` of ``OptunaSearch`` / ``study.ask``)."""
        return {p.key: p.distribution() for p in self.params}

    def defaults(self) -> dict[str, Any]:
        """``{key: default}`` of the parameters that have a default."""
        return {p.key: p.default for p in self.params if p.default is not None}

    def baseline(self, cfg: Any) -> dict[str, Any]:
        """The baseline point of a sweep from ``cfg``: each parameter's value there where the space
        holds it, else the parameter's default (parameters with neither are sampled)."""
        point = {}
        for p in self.params:
            value = functools.reduce(getattr, p.key.split("."), cfg)
            if p.contains(value) or p.default is not None:
                point[p.key] = value if p.contains(value) else p.default
        return point

    def apply(self, cfg: T, point: Mapping[str, Any]) -> T:
        """``cfg`` with the sampled ``point`` applied (see :func:`apply_point`)."""
        unknown = sorted(set(point) - set(self.keys))
        if unknown:
            raise ConfigError(f"{self.source}: {unknown[0]}: not a parameter of this space")
        return apply_point(cfg, point, source=self.source)


def load_space(path: str | Path, root: type) -> SearchSpace:
    """Read and validate a space file against the config dataclass ``root``."""
    return parse_space(load_yaml(path), root, source=str(path))


def parse_space(data: Mapping[str, Any], root: type, source: str = "<dict>") -> SearchSpace:
    """Validate a ``{dotted key: spec}`` mapping; errors name ``source`` and the key."""
    if not data:
        raise ConfigError(f"{source}: the search space has no parameter")
    base = root()
    params = tuple(_parse_param(str(key), spec, root, base, source) for key, spec in data.items())
    return SearchSpace(params, root, source)


def apply_point(cfg: T, point: Mapping[str, Any], source: str = "<point>") -> T:
    """Set dotted keys of a config dataclass and rebuild it (all field validation applies)."""
    data = dataclasses.asdict(cfg)
    for key, value in point.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"{source}: {key}: not a config field")
            node = node[part]
        if leaf not in node:
            raise ConfigError(f"{source}: {key}: not a config field")
        node[leaf] = value
    return from_dict(type(cfg), data, source)


def field_hint(root: type, key: str, source: str = "<dict>") -> Any:
    """The type hint of the field at dotted ``key`` of dataclass ``root`` (Optional unwrapped)."""
    cls: Any = root
    parts = key.split(".")
    for i, part in enumerate(parts):
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"{source}: {key}: {'.'.join(parts[:i])} is not a config section")
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        if part not in names:
            where = ".".join(parts[:i]) or "the top level"
            raise ConfigError(f"{source}: {key}: not a config field ({where} has: {', '.join(names)})")
        cls = _strip_optional(typing.get_type_hints(cls)[part])
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"{source}: {key}: is a config section, not a field")
    return cls


def _parse_param(key: str, spec: Any, root: type, base: Any, source: str) -> Param:
    where = f"{source}: {key}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping with type/low/high/choices, got {spec!r}")
    extra = sorted(set(spec) - _SPEC_KEYS)
    if extra:
        raise ConfigError(f"{where}: unknown attribute {extra[0]!r} (known: {', '.join(sorted(_SPEC_KEYS))})")
    hint = field_hint(root, key, source)
    kind = spec.get("type")
    if kind not in ("float", "int", "categorical"):
        raise ConfigError(f"{where}: type must be float, int or categorical, got {kind!r}")
    param = _build_param(key, kind, spec, hint, where)
    for label, value in _values_to_check(param):
        try:
            apply_point(base, {key: value}, source=source)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {label}={value!r} is outside the field's domain ({exc})") from None
    return param


def _build_param(key: str, kind: str, spec: Mapping[str, Any], hint: Any, where: str) -> Param:
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false, got {log!r}")
    if kind == "categorical":
        return _categorical(key, spec, where)
    if not _accepts(hint, float if kind == "float" else int):
        raise ConfigError(f"{where}: type {kind} does not fit the field's type {_name(hint)}")
    number = float if kind == "float" else int
    low, high, step = (_number(spec.get(n), number, f"{where}: {n}", required=n != "step")
                       for n in ("low", "high", "step"))
    if low > high:
        raise ConfigError(f"{where}: low ({low}) is above high ({high})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale parameter needs low > 0, got {low}")
    if step is not None and (step <= 0 or (log and (kind == "float" or step != 1))):
        raise ConfigError(f"{where}: step must be positive, and with log at most 1 (ints) or absent (floats)")
    if step is not None and not math.isclose((high - low) / step, round((high - low) / step)):
        raise ConfigError(f"{where}: high - low ({high - low:g}) must be a multiple of step ({step:g})")
    default = spec.get("default")
    if default is not None:
        default = _number(default, number, f"{where}: default", required=True)
        if not low <= default <= high:
            raise ConfigError(f"{where}: default {default} is outside [{low}, {high}]")
    return Param(key, kind, low, high, log, step, (), default)  # type: ignore[arg-type]


def _categorical(key: str, spec: Mapping[str, Any], where: str) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ConfigError(f"{where}: a categorical parameter needs a non-empty list of choices")
    bad = [c for c in choices if not isinstance(c, _SCALARS)]
    if bad:
        raise ConfigError(f"{where}: choices must be scalars (bool, int, float, str, null), got {bad[0]!r}")
    for name in ("low", "high", "step"):
        if spec.get(name) is not None:
            raise ConfigError(f"{where}: {name} does not apply to a categorical parameter")
    default = spec.get("default")
    if default is not None and default not in choices:
        raise ConfigError(f"{where}: default {default!r} is not one of the choices {choices}")
    return Param(key, "categorical", choices=tuple(choices), default=default)


def _values_to_check(p: Param) -> list[tuple[str, Any]]:
    if p.type == "categorical":
        values = [(f"choices[{i}]", c) for i, c in enumerate(p.choices)]
    elif p.type == "int" and (p.high - p.low) // (p.step or 1) < _INT_CHECK_ALL:  # odd-only fields and the like
        values = [("value", v) for v in range(p.low, p.high + 1, p.step or 1)]
    else:
        values = [("low", p.low), ("high", p.high)]
    return values + ([("default", p.default)] if p.default is not None else [])


def _number(value: Any, kind: type, where: str, required: bool) -> Any:
    if value is None:
        if required:
            raise ConfigError(f"{where}: missing")
        return None
    if kind is float:
        value = yaml_float(value)
    ok = isinstance(value, (int, float)) if kind is float else isinstance(value, int)
    if isinstance(value, bool) or not ok or (kind is float and not math.isfinite(value)):
        raise ConfigError(f"{where}: expected {'a number' if kind is float else 'an integer'}, got {value!r}")
    return kind(value)


def _strip_optional(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return hint


def _accepts(hint: Any, kind: type) -> bool:
    """Whether a field typed ``hint`` takes values of ``kind`` (an int fits a float field)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(_accepts(a, kind) for a in typing.get_args(hint))
    return hint is kind or hint is Any or (kind is int and hint is float)


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))
