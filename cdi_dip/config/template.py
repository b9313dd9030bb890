"""The default configuration as commented TOML (``cdi-dip config --defaults``).

Every field of :class:`~cdi_dip.config.options.RunConfig` and its sections is
written with its default, its docstring as ``#`` lines, its range and its
choices; a field whose default is None (unset) is written commented out, so
the text parses back (:func:`tomllib.loads`, then
:func:`cdi_dip.config.config_from_dict`) into the default configuration.
The field docstrings are read from the source of the dataclasses, where
Python does not keep them at run time.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import functools
import inspect
import json
import typing
from typing import Any

from .options import RunConfig
from .schema import _is_union, _type_hints


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass, by field name.

    Parameters
    ----------
    cls : type
        A dataclass whose fields are followed by string literals (``x: int = 1`` then ``\"\"\"...\"\"\"``).

    Returns
    -------
    dict
        Field name -> cleaned docstring; fields without one are left out.
    """
    tree = ast.parse(inspect.cleandoc("\n" + inspect.getsource(cls)))
    body = tree.body[0].body
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def toml_value(value: Any) -> str:
    """One plain value (bool, number, string, enum, list) as a TOML literal."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    return repr(value)


def _range_text(low: float | None, high: float | None) -> str:
    """``0.0 to 1.0``, ``>= 8`` or ``<= 1.0`` (None: unbounded on that side)."""
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f">= {low}" if low is not None else f"<= {high}"


def _enum_type(annotation: Any) -> type | None:
    """The enum of a field's annotation (``Method``, ``DipParam | None``), else None."""
    options = typing.get_args(annotation) if _is_union(annotation) else (annotation,)
    return next((t for t in options if isinstance(t, type) and issubclass(t, enum.Enum)), None)


def _field_lines(cls: type, item: dataclasses.Field, value: Any) -> list[str]:
    """The comment lines and the ``key = value`` line of one field (commented out when unset)."""
    lines = [f"# {line}".rstrip() for line in field_docs(cls).get(item.name, "").splitlines()]
    low_high = item.metadata.get("range")
    if low_high:
        lines.append(f"# range: {_range_text(*low_high)}")
    annotation = _type_hints(cls)[item.name]
    choices = _enum_type(annotation)
    if choices is not None:
        lines.append(f"# choices: {', '.join(member.value for member in choices)}")
    if value is None:
        lines.append(f"# {item.name} = {_unset_example(item, annotation, choices)}  (default: unset)")
    else:
        lines.append(f"{item.name} = {toml_value(value)}")
    return lines


def _unset_example(item: dataclasses.Field, annotation: Any, choices: type | None) -> str:
    """What an unset field could be set to: its first choice, its range's lower bound or a placeholder
    of its type (a list of one such value for a list field)."""
    low = (item.metadata.get("range") or (None, None))[0]
    kinds = set(typing.get_args(annotation)) - {type(None)}
    element = next((typing.get_args(kind)[0] for kind in kinds if typing.get_origin(kind) is list), None)
    if choices is not None:
        example = toml_value(next(iter(choices)))
    elif low is not None:
        example = toml_value(low)
    else:
        example = {bool: "true", str: '"..."'}.get(element or next(iter(kinds), None), "...")
    return f"[{example}]" if element is not None else example


def _section_lines(section: Any) -> list[str]:
    """Every plain field of one section (or of the top level), separated by blank lines."""
    lines: list[str] = []
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if not dataclasses.is_dataclass(value):
            lines += [*_field_lines(type(section), item, value), ""]
    return lines


def default_toml(config: RunConfig | None = None) -> str:
    """The whole configuration as commented TOML: the top-level fields, then one table per section.

    Parameters
    ----------
    config : RunConfig, optional
        The configuration to write; None: the defaults (``RunConfig()``).

    Returns
    -------
    str
        TOML text that :func:`tomllib.loads` reads and
        :func:`cdi_dip.config.config_from_dict` turns back into ``config``.
    """
    config = RunConfig() if config is None else config
    docs = field_docs(RunConfig)
    lines = ["# cdi-dip configuration: every setting with its default.",
             "# Use it with --config FILE; command-line options override it.", "", *_section_lines(config)]
    for item in dataclasses.fields(config):
        section = getattr(config, item.name)
        if dataclasses.is_dataclass(section):
            comment = [f"# {line}".rstrip() for line in docs.get(item.name, "").splitlines()]
            lines += [*comment, f"[{item.name}]", "", *_section_lines(section)]
    return "\n".join(lines).rstrip() + "\n"
