"""Command-line interface: one sub-command per concern, each defined in `csr_core/commands/<name>.py`.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`; modules are imported
lazily so `--help` stays fast and a missing optional dependency only breaks its own command.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

from csr_core.errors import CancelledError, CSRError

COMMAND_MODULES: tuple[str, ...] = ("eval", "codeswitch", "finetune", "experiment", "import_results", "models", "datasets",
                                   "gaps")


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. Given `argv`, only the chosen command's arguments are built: some commands' arguments come
    from config classes whose modules import torch, which a warm `eval` never needs."""
    parser = argparse.ArgumentParser(
        prog="python -m csr_core",
        description="CSR Lab: code-switched cross-lingual image-text retrieval. Each command has its own --help.",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = [importlib.import_module(f"csr_core.commands.{name}") for name in COMMAND_MODULES]
    names = {module.NAME for module in modules}
    chosen = next((a for a in argv if a in names), None) if argv is not None else None
    for module in modules:
        sub = subparsers.add_parser(module.NAME, help=module.HELP, description=module.__doc__)
        if chosen is None or module.NAME == chosen:
            module.add_arguments(sub)
        sub.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the Python traceback of an error")
        sub.set_defaults(_run=module.run)
    return parser


def _one_line(error: BaseException) -> str:
    """An unexpected exception as one line a user can act on: its type and message, never a traceback."""
    text = " ".join(str(error).split()) or "(no message)"
    return f"{type(error).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    """Run one command. Every failure is one `error:` line and exit code 2 (the project's own errors say what to
    fix; anything else is reported with its type, `--debug` shows the traceback); Ctrl-C is exit 130 with nothing
    written (results are written atomically, so a cancelled run leaves none behind)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    debug = bool(getattr(args, "debug", False))
    try:
        return int(args._run(args) or 0)
    except (KeyboardInterrupt, CancelledError):
        if debug:
            traceback.print_exc()
        print("cancelled; nothing was written", file=sys.stderr)
        return 130
    except CSRError as error:
        if debug:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - the CLI's last line of defence: one line, not a traceback
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(error)} (run with --debug for the traceback)", file=sys.stderr)
        return 2
