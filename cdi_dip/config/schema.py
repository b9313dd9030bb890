"""The generic part of the configuration: fields that carry their allowed values, one validator, coercion.

A section of the configuration is a dataclass whose fields are declared with
:func:`option`; :func:`validate` checks every field of a section against its
declaration, so a new setting is one field (and its docstring)::

    @dataclass
    class ProjectionConfig:
        beta: float = option(0.9, range=(0.0, 1.0))

:func:`coerce` builds a section from plain data (parsed TOML, command-line
options), refusing unknown keys and values of the wrong type; :func:`merge`
lays one such mapping over another; :func:`plain` turns a section back into
plain data. Nothing here knows any particular setting.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import numbers
import types
import typing
from collections.abc import Iterable
from typing import Any

from ..errors import InvalidInputError

Range = tuple[float | None, float | None]
"""Inclusive ``(low, high)`` bounds of a number; None: unbounded on that side."""


def option(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    range: Range | None = None,  # noqa: A002  (the name users of the schema read)
    choices: Iterable[Any] | None = None,
) -> Any:
    """A dataclass field that carries its allowed values, for :func:`validate`.

    Parameters
    ----------
    default, default_factory
        As for :func:`dataclasses.field`.
    range : (low, high), optional
        Inclusive bounds of the value (of each element of a list); None on a
        side leaves it open. A None value is not checked.
    choices : iterable, optional
        The only values allowed (None is always allowed for an optional field).

    Returns
    -------
    dataclasses.Field
        With ``range`` and ``choices`` in its metadata.
    """
    metadata: dict[str, Any] = {}
    if range is not None:
        metadata["range"] = tuple(range)
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def validate(section: Any, name: str = "") -> None:
    """Check every field of one configuration section against its declaration.

    In this order, per field: no NaN or infinity in a float or a list of floats
    (a NaN passes every range check, ``nan < low`` being false, so no float
    field is left out); a bool where a number belongs, or
    a number where a bool belongs, is refused (Python counts ``True`` as 1);
    the ``range`` and ``choices`` of :func:`option`. Fields that are sections
    themselves are left to their own ``validate``.

    Parameters
    ----------
    section : dataclass instance
        One section (``ProjectionConfig()``) or the top level (``RunConfig()``).
    name : str
        Its dotted name, the prefix of the field names in messages (``"projection"``).

    Raises
    ------
    InvalidInputError
        ``configuration: projection.beta = 1.5 is above its maximum 1.0``, and alike.
    """
    hints = _type_hints(type(section))
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if _is_section(value):
            continue
        where = _path(name, item.name)
        _check_finite_field(where, item, value)
        _check_kind(where, hints[item.name], value)
        low, high = item.metadata.get("range") or (None, None)
        for element in _elements(value):
            if element is not None:
                check_range(where, element, low, high)
        choices = item.metadata.get("choices")
        if choices is not None and value is not None and value not in choices:
            raise InvalidInputError(
                f"configuration: {where} = {value!r}; choose one of {', '.join(str(c) for c in choices)}"
            )


def check_range(name: str, value: float, low: float | None, high: float | None) -> None:
    """Refuse ``value`` outside ``[low, high]`` (None: open on that side) or not finite, naming ``name``."""
    if _non_finite(value):  # NaN passes every comparison
        raise _not_finite(name, value)
    if low is not None and value < low:
        raise InvalidInputError(f"configuration: {name} = {value} is below its minimum {low}")
    if high is not None and value > high:
        raise InvalidInputError(f"configuration: {name} = {value} is above its maximum {high}")


def check_finite(config: Any, section: str = "") -> None:
    """Refuse NaN and infinity in every float field of a configuration and of its sections, first of all.

    The finiteness part of :func:`validate` over the whole tree, so that a NaN
    is reported as such wherever it is, before any range or shape check of
    another field or section sees it.
    """
    for item in dataclasses.fields(config):
        name = _path(section, item.name)
        value = getattr(config, item.name)
        if _is_section(value):
            check_finite(value, name)
        else:
            _check_finite_field(name, item, value)


def _check_finite_field(name: str, item: dataclasses.Field, value: Any) -> None:
    """Refuse a non-finite float in one field (or in one element of a list field)."""
    is_list = isinstance(value, (list, tuple))
    for index, element in enumerate(_elements(value)):
        if _non_finite(element):
            raise _not_finite(f"{name}[{index}]" if is_list else name, element, _default_hint(item))


def _check_kind(name: str, annotation: Any, value: Any) -> None:
    """Refuse a bool in a number field and a number in a bool field (or list element)."""
    kinds = _scalar_types(annotation)
    for element in _elements(value):
        if element is None:
            continue
        if isinstance(element, bool) and bool not in kinds and kinds & {int, float}:
            expected = "an integer" if int in kinds else "a number"
            raise InvalidInputError(f"configuration: {name} must be {expected}, got {element!r}")
        if bool in kinds and not isinstance(element, bool) and isinstance(element, numbers.Number):
            raise InvalidInputError(f"configuration: {name} must be true or false, got {element!r}")


def _scalar_types(annotation: Any) -> set[Any]:
    """The plain types an annotation allows: ``int | None`` -> {int, None}, ``list[int] | None`` -> {int, None}."""
    if _is_union(annotation):
        return set().union(*(_scalar_types(option) for option in typing.get_args(annotation)))
    if typing.get_origin(annotation) is list:
        return _scalar_types(typing.get_args(annotation)[0])
    return {annotation}


def _elements(value: Any) -> list[Any]:
    """The value itself, or the elements of a list value."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _not_finite(name: str, value: Any, hint: str = "") -> InvalidInputError:
    return InvalidInputError(f"configuration: {name} = {value} is not a finite number; give a number{hint}")


def _non_finite(value: Any) -> bool:
    """A real number (not an integer) that is NaN or infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value)


def _default_hint(item: dataclasses.Field) -> str:
    """`` (default X)`` for a field with a plain default, else nothing."""
    if item.default is dataclasses.MISSING or item.default is None:
        return ""
    return f" (default {item.default})"


def _is_section(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _path(section: str, name: str) -> str:
    return f"{section}.{name}" if section else name


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


# -- plain data in and out ---------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Plain data (enums as their values, tuples as lists) from the :func:`dataclasses.asdict` of a section."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def coerce(section: str, cls: type, data: dict[str, Any]) -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and bad types (ranges: :func:`validate`)."""
    known = {f.name for f in dataclasses.fields(cls)}
    hints = _type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = _path(section, key)
        if key not in known:
            raise InvalidInputError(
                f"configuration: unknown key {name!r}; known keys here: {', '.join(sorted(known))}"
            )
        kwargs[key] = _coerce_value(name, hints[key], value)
    return cls(**kwargs)


def _coerce_value(name: str, annotation: Any, value: Any) -> Any:
    """One value checked against its field's type (``X | None``, enums, lists, scalars)."""
    options = typing.get_args(annotation) if _is_union(annotation) else ()
    if options:
        if value is None and type(None) in options:
            return None
        annotation = next(option for option in options if option is not type(None))
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise InvalidInputError(f"configuration: {name} must be a table of settings")
        return coerce(name, annotation, value)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            choices = ", ".join(m.value for m in annotation)
            raise InvalidInputError(f"configuration: {name} = {value!r}; choose one of {choices}") from None
    if typing.get_origin(annotation) is list:
        if not isinstance(value, (list, tuple)):
            raise InvalidInputError(f"configuration: {name} must be a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_check_scalar(f"{name}[{index}]", item_type, item) for index, item in enumerate(value)]
    return _check_scalar(name, annotation, value)


def _check_scalar(name: str, annotation: Any, value: Any) -> Any:
    """A bool, int, float or str value checked against its type."""
    if annotation is bool:
        if not isinstance(value, bool):
            raise InvalidInputError(f"configuration: {name} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidInputError(f"configuration: {name} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidInputError(f"configuration: {name} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise InvalidInputError(f"configuration: {name} must be a string, got {value!r}")
        return value
    return value


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``overrides`` (e.g. CLI options) over ``base`` (e.g. TOML)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
