"""List the registered datasets, their splits, where their images come from and whether they are present here."""

from __future__ import annotations

import argparse

NAME = "datasets"
HELP = "list datasets and whether their files are present in the data folder"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="data folder (default $CSR_DATA_DIR or ../shared/data)")


def run(args: argparse.Namespace) -> int:
    from csr_core.datasets import PROVENANCE_LABELS, list_datasets
    from csr_core.paths import data_dir

    root = args.data_dir or data_dir()
    print(f"data folder: {root}")
    for info in list_datasets(args.data_dir):
        mark = "here" if info["available"] else "----"
        print(f"  [{mark}] {info['name']:18s} splits: {', '.join(info['splits'])}")
        print(f"         {info['description']} (images: {info['images']})")
        for src in info["languages"]:
            here = "" if src["present"] else "  [files not here]"
            print(f"           {src['lang']:10s} {PROVENANCE_LABELS[src['provenance']]:40s} {src['source']} "
                  f"(splits: {', '.join(src['splits'])}){here}")
    return 0
