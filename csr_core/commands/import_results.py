"""Import published retrieval numbers (CLIP_benchmark JSON, open_clip CSVs) into the results store as reference rows.

    python -m csr_core import clip-benchmark results/*.json
    python -m csr_core import openclip-csv [FILE ...]     (default: $CSR_DATA_DIR/reference/openclip_*.csv)

Reference rows carry source "reference:..." and live under results/reference/<name>/, apart from our runs;
importing the same file again replaces its earlier import instead of doubling it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from csr_core.commands._config_args import folder_path

NAME = "import"
HELP = "import CLIP_benchmark JSON or open_clip CSV results as reference rows"

_DEFAULT_CSVS = ("openclip_multilingual_retrieval_results.csv", "openclip_retrieval_results.csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=("clip-benchmark", "openclip-csv"), help="format of the files")
    parser.add_argument("files", nargs="*", type=Path, metavar="FILE",
                        help="files to import (openclip-csv defaults to the shared reference CSVs)")
    parser.add_argument("--name", default=None,
                        help="reference folder name (default: derived from each file's name)")
    parser.add_argument("--results-dir", type=folder_path, default=None,
                        help="results store root (default: $CSR_RESULTS_DIR or ./results)")


def _default_csvs() -> list[Path]:
    from csr_core.errors import DataError
    from csr_core.paths import data_dir

    folder = data_dir() / "reference"
    found = [folder / name for name in _DEFAULT_CSVS if (folder / name).is_file()]
    if not found:
        raise DataError(f"no open_clip CSV found in {folder}; pass the file path (or set CSR_DATA_DIR)")
    return found


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in text).strip("._") or "import"


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from csr_core.errors import DataError
    from csr_core.importers import import_clip_benchmark_json, import_openclip_csv
    from csr_core.results import ResultsStore, build_manifest

    files = list(args.files)
    if args.kind == "openclip-csv" and not files:
        files = _default_csvs()
    if not files:
        raise DataError("no files given: pass one or more CLIP_benchmark result JSON files")
    reader = import_clip_benchmark_json if args.kind == "clip-benchmark" else import_openclip_csv
    prefix = "clip_benchmark" if args.kind == "clip-benchmark" else "openclip"
    store = ResultsStore(Path(args.results_dir) if args.results_dir else None)
    store.check_writable()
    tables = [(path, reader(path)) for path in files]  # read everything first: a bad file imports nothing
    if args.name:  # one named folder holding every file's rows
        groups = [(_slug(args.name), [p for p, _ in tables], pd.concat([t for _, t in tables], ignore_index=True))]
    else:
        groups = [(f"{prefix}-{_slug(path.stem)}", [path], table) for path, table in tables]
    total = 0
    for name, paths, rows in groups:
        params = {"importer": args.kind, "files": [str(p.resolve()) for p in paths]}
        manifest = build_manifest(params, {"files": {p.name: _sha256(p) for p in paths}})
        store.write_reference(rows, name, manifest)
        total += len(rows)
        print(f"imported {len(rows)} rows from {', '.join(p.name for p in paths)} → {store.reference_dir / name}")
    print(f"{total} reference rows imported into {store.root}")
    return 0


def _sha256(path: Path) -> str:
    from csr_core._io import file_sha256

    return file_sha256(path)
