"""CLI flags derived from a config dataclass, so a new config field is a new flag without re-declaring it here.

Each field becomes `--field-name` with the field's type and default (`bool` fields get `--x / --no-x`;
`int | None` fields take an int or stay None). Help text comes from `help` (what the field's docstring would say),
choices from `choices`. `config_from_args` builds the dataclass back from the parsed namespace, so validation stays in
the dataclass's `__post_init__`.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any


def _scalar_type(hint: Any) -> tuple[type, bool]:
    """(int/float/str/bool, optional?) of a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return _scalar_type(args[0])[0], True
        raise TypeError(f"unsupported union type {hint!r}")
    if hint in (int, float, str, bool):
        return hint, False
    raise TypeError(f"unsupported config field type {hint!r}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, help: dict[str, str] | None = None,
                         choices: dict[str, list[Any]] | None = None, skip: tuple[str, ...] = ()) -> None:
    """One flag per field of the dataclass `cls` (except `skip`), defaults from a default instance."""
    defaults = cls()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, optional = _scalar_type(hints[field.name])
        flag = "--" + field.name.replace("_", "-")
        default = getattr(defaults, field.name) if not optional else field.default
        text = (help or {}).get(field.name, "")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=text)
            continue
        allowed = choices.get(field.name) if choices else None
        parser.add_argument(flag, type=kind, default=default, choices=allowed,
                            help=(text + " " if text else "") + f"(default {default})")


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The dataclass `cls` from the namespace (fields missing from it keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**(values | overrides))
