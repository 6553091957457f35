"""List the model backends, which of them run on this machine, and the models usable offline."""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "list model backends and the models that run offline here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace) -> int:
    import json

    from csr_core.encoders.registry import available_backends, list_offline_models

    backends = available_backends()
    models = list_offline_models()
    if args.json:
        print(json.dumps({"backends": [b.__dict__ for b in backends], "offline_models": models}, indent=2))
        return 0
    print("backends:")
    for backend in backends:
        mark = "yes" if backend.runs_offline_here else "no "
        print(f"  [{mark}] {backend.name:10s} {backend.reason}")
    print("models that run offline here:" if models else "no model runs offline here yet")
    for model in models:
        print(f"  {model}")
    return 0
