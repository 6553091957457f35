"""CLI flags derived from a config dataclass, so a new config field is a new flag without re-declaring it here.

Each field becomes `--field-name` (or the name given in `flags`) with the field's type and default (`bool` fields get
`--x / --no-x`; `int | None` fields take an int or stay None; `Sequence[str]` fields take a comma-separated list,
`Sequence[int | float]` fields one or more values). A field without a default is a required flag unless `defaults`
gives the CLI's default. Help text comes from `help` (what the field's docstring would say), choices from `choices`. `config_from_args` builds the dataclass back from the parsed namespace, so validation stays in
the dataclass's `__post_init__`.
"""

from __future__ import annotations

import argparse
import collections.abc
import dataclasses
import types
import typing
from typing import Any

from csr_core.errors import CSRError


def comma_list(value: str) -> list[str]:
    """'en, de,fr' → ['en', 'de', 'fr'] (what every list-of-names flag takes)."""
    return [item.strip() for item in value.split(",") if item.strip()]


def folder_path(value: str) -> str:
    """argparse type of folder flags: an empty value is refused (`--out ""` used to mean the shipped results/)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty (leave the flag out for the default)")
    return value


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """`--threads`: training commands pin torch's CPU threads so shipped heads can be reproduced bit for bit."""
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (the shipped heads were trained with 1; other counts can change "
                             "float rounding, so --check-shipped may then report tiny differences)")


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads when `--threads` was given (before any model is built)."""
    if args.threads is not None:
        if args.threads < 1:
            raise CSRError(f"--threads must be >= 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)


def _field_type(hint: Any) -> tuple[type, bool, bool]:
    """(int/float/str/bool, optional?, sequence?) of a field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            kind, _, sequence = _field_type(args[0])
            return kind, True, sequence
        raise TypeError(f"unsupported union type {hint!r}")
    if origin in (collections.abc.Sequence, list, tuple):
        (item,) = typing.get_args(hint)[:1]
        kind, _, _ = _field_type(item)
        return kind, False, True
    if hint in (int, float, str, bool):
        return hint, False, False
    raise TypeError(f"unsupported config field type {hint!r}")


def add_config_arguments(parser: argparse.ArgumentParser, cls: type, *, help: dict[str, str] | None = None,
                         choices: dict[str, list[Any]] | None = None, skip: tuple[str, ...] = (),
                         flags: dict[str, str] | None = None, defaults: dict[str, Any] | None = None) -> None:
    """One flag per field of the dataclass `cls` (except `skip`), defaults from the field (or `defaults`)."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, optional, sequence = _field_type(hints[field.name])
        flag = (flags or {}).get(field.name) or "--" + field.name.replace("_", "-")
        if defaults and field.name in defaults:
            default: Any = defaults[field.name]
        elif field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = dataclasses.MISSING
        text = (help or {}).get(field.name, "")
        common: dict[str, Any] = {"dest": field.name}
        if default is dataclasses.MISSING:
            common["required"] = True
        else:
            common["default"] = list(default) if isinstance(default, tuple) else default
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=text, **common)
            continue
        if sequence and kind is str:
            common["type"] = comma_list
        elif sequence:
            common.update(type=kind, nargs="+")
        else:
            common.update(type=kind, choices=choices.get(field.name) if choices else None)
        shown = (",".join if kind is str else " ".join)(map(str, default)) if sequence and default else default
        suffix = "" if default in (dataclasses.MISSING, None, "") else f"(default {shown})"
        parser.add_argument(flag, help=" ".join(t for t in (text, suffix) if t), **common)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The dataclass `cls` from the namespace (fields missing from it keep their defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    return cls(**(values | overrides))
