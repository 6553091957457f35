"""Command-line interface: one sub-command per concern, each defined in `csr_core/commands/<name>.py`.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`; modules are imported
lazily so `--help` stays fast and a missing optional dependency only breaks its own command.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from csr_core.errors import CSRError

COMMAND_MODULES: tuple[str, ...] = ("eval", "codeswitch", "finetune", "experiment", "import_results", "models", "datasets",
                                   "gaps")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m csr_core",
        description="CSR Lab: code-switched cross-lingual image-text retrieval. Each command has its own --help.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        module = importlib.import_module(f"csr_core.commands.{module_name}")
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CSRError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
