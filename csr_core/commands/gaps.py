"""The gap to English per language against typology, close vs distant, and cross-lingual pairs, for one stored run.

What the Gaps page shows, as text. The run is named by id (`--run`) or is the newest run of a model (`--model`).

Examples:
  python -m csr_core gaps --model csr-mini-m:en --dataset flickr8k-multi30k
  python -m csr_core gaps --run 20261202T160000Z-1a2b3c4d --direction i2t --k 5 --groups cs=close
  python -m csr_core gaps --model csr-mini-m:en --dataset xtd10 --pairs --kind syntactic
  python -m csr_core gaps --summary results/distant-languages.md
  python -m csr_core gaps --write-uriel-table     # after a urielplus upgrade: the shipped distance table
"""

from __future__ import annotations

import argparse
import math
import sys

from csr_core.commands._config_args import folder_path

NAME = "gaps"
HELP = "gap to English vs typology, close vs distant, and language pairs of a stored run"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from csr_core.languages import DISTANCE_KINDS
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--summary", metavar="FILE", help="write the close-vs-distant summary of the shipped runs as "
                       "markdown (results/distant-languages.md)")
    which.add_argument("--write-uriel-table", action="store_true", help="recompute the URIEL distances shipped in "
                       "csr_core/languages/uriel_distances.json with the installed urielplus")
    which.add_argument("--run", help="run id (see results/runs/)")
    which.add_argument("--model", help="the newest run of this model name (e.g. csr-mini-m:en)")
    parser.add_argument("--dataset", default=None, help="with --model: only runs on this dataset")
    parser.add_argument("--direction", default="t2i", choices=("t2i", "i2t"), help="monolingual direction (t2i)")
    parser.add_argument("--k", type=int, default=10, help="recall cut-off (10)")
    parser.add_argument("--kind", default="genetic", choices=DISTANCE_KINDS, help="URIEL distance (genetic)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="group by URIEL distance from English (<= close) instead of the default groups")
    parser.add_argument("--groups", default="", help="overrides, e.g. 'cs=close,pl=between'")
    parser.add_argument("--pairs", action="store_true", help="the pair view of a cross run instead of gaps to English")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    parser.add_argument("--out", type=folder_path, default=None, help="results folder (default: results/ or $CSR_RESULTS_DIR)")


def _same_model(a: str, b: str) -> bool:
    """csr-mini names compare parsed (`csr-mini-m:en` is `csr-mini-m:en/s0`); other names as written."""
    from csr_core.model_names import CsrMiniName

    parsed_a, parsed_b = CsrMiniName.try_parse(a), CsrMiniName.try_parse(b)
    return parsed_a == parsed_b if parsed_a is not None and parsed_b is not None else a == b


def _pick_run(store, args: argparse.Namespace) -> dict:
    from csr_core.errors import DataError

    damaged: dict[str, str] = {}
    runs = store.runs(damaged=damaged)  # one damaged run does not hide the rest; it is named
    for folder, reason in damaged.items():
        print(f"warning: {folder} skipped: {reason}", file=sys.stderr)
    if args.run:
        found = [m for m in runs if m.get("run_id") == args.run]
        if not found:
            raise DataError(f"no run {args.run!r} in {store.runs_dir}")
        return found[0]
    setting = "cross" if args.pairs else "monolingual"
    found = [m for m in runs if _same_model(str((m.get("params") or {}).get("model")), args.model)
             and setting in (m.get("params") or {}).get("settings", ())
             and (args.dataset is None or (m.get("params") or {}).get("dataset") == args.dataset)]
    if not found:
        raise DataError(f"no run of {args.model!r} with the {setting} setting"
                        + (f" on {args.dataset}" if args.dataset else "") + f" in {store.runs_dir}")
    return max(found, key=lambda m: str(m.get("created_utc", "")))


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value is None or not math.isfinite(float(value)) else f"{float(value):+.{digits}f}"


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from csr_core.languages import parse_group_overrides
    from csr_core.results import ResultsStore
    from csr_core.viz import correlation_text

    if args.write_uriel_table:
        from csr_core.languages.uriel import write_shipped_table

        print(f"wrote {write_shipped_table()}")
        return 0
    store = ResultsStore(args.out) if args.out else ResultsStore()
    if args.summary:
        from csr_core._io import atomic_write_text
        from csr_core.gap_report import render

        atomic_write_text(args.summary, render(store, k=args.k, kind=args.kind))
        print(f"wrote {args.summary}")
        return 0
    manifest = _pick_run(store, args)
    run_id = str(manifest["run_id"])
    params = manifest.get("params") or {}
    ranks = store.load_ranks(run_id)
    print(f"run {run_id}: {params.get('model')} on {params.get('dataset')}/{params.get('split')}")
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 60):
        if args.pairs:
            from csr_core.pairs import analyse_pairs

            result = analyse_pairs(ranks, k=args.k, kind=args.kind, seed=args.seed)
            print(f"cross-lingual t2t, pair score = mean R@{args.k} of both directions, URIEL {args.kind} distance")
            print(result.pairs.drop(columns=["note"]).round(3).to_string(index=False))
            print(correlation_text(result.correlation))
            print(f"note: {result.correlation.note}")
            mantel = result.mantel
            print(f"Mantel test: Spearman ρ = {_fmt(mantel.rho, 2)}, p = {_fmt(mantel.p_value, 4).lstrip('+')} "
                  f"({mantel.note})")
            return 0
        from csr_core.gap_views import gap_view

        view = gap_view(ranks, manifest, k=args.k, direction=args.direction, kind=args.kind,
                        threshold=args.threshold, overrides=parse_group_overrides(args.groups), seed=args.seed)
        print(f"gap to en at R@{args.k} ({args.direction}), points; URIEL {args.kind} distance from en")
        print(view.gaps.drop(columns=["note"]).round(3).to_string(index=False))
        print(correlation_text(view.correlation, unit="languages"))
        print(f"note: {view.correlation.note}")
        print("by group (per photo: gap to en, mean over the group's languages):")
        print(view.group_table.round(2).to_string(index=False) if len(view.group_table) else "  (no group here)")
        test = view.group_test
        print(f"close − distant: {_fmt(test['diff'])} points, p = {_fmt(test['p_value'], 3).lstrip('+')}, "
              f"{test['n']} photos ({test['note']})")
        for note in view.notes:
            print(f"note: {note}")
    return 0
