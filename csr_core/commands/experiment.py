"""Run a fine-tuning experiment grid (arms x text towers x seeds) into results/ and write its report.

Examples:
  python -m csr_core experiment                      # the full grid of the default design, then the report
  python -m csr_core experiment --design experiment-2 --towers e5 --seeds 0,1   # part of a grid (resumable)
  python -m csr_core experiment --towers minilm --seeds 0 --arms en,mlcs-de-fr-cs
  python -m csr_core experiment --report-only        # only regenerate the design's report from stored runs
  python -m csr_core experiment --report-only --html report.html   # ... and the whole report as one HTML file
                                                     # (experiment-2: results/README.md + experiment-2/report.json;
                                                     #  experiment-1: results/experiment-1.md)

Runs already in the store with the same parameters and the same heads (content hash) are not evaluated again.
"""

from __future__ import annotations

import argparse

from csr_core.commands._config_args import add_threads_argument, apply_threads

NAME = "experiment"
HELP = "train + evaluate every arm x tower x seed of a design into results/ and write its report"


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from csr_core.experiment import DEFAULT_DESIGN, DESIGNS

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--design", default=DEFAULT_DESIGN, choices=list(DESIGNS),
                        help="the declared grid (arms, seeds, languages, switching); its run set tags every run")
    parser.add_argument("--towers", type=_csv, default=["minilm", "e5"])
    parser.add_argument("--arms", type=_csv, default=None, help="default: the design's arms")
    parser.add_argument("--seeds", type=lambda v: [int(x) for x in _csv(v)], default=None,
                        help="default: the design's seeds")
    parser.add_argument("--ship-seeds", type=lambda v: [int(x) for x in _csv(v)], default=None,
                        help="seeds whose heads are saved into the heads folder (default: the design's)")
    parser.add_argument("--heads-dir", default=None, help="default: csr_core/heads")
    parser.add_argument("--results", default=None, help="results folder (default results/ or $CSR_RESULTS_DIR)")
    parser.add_argument("--xtd-max", type=int, default=500, help="XTD10 lines evaluated (seeded subset)")
    parser.add_argument("--report", action="store_true", help="write the design's report after the grid")
    parser.add_argument("--report-only", action="store_true", help="only write the design's report (results/README.md for experiment-2, results/experiment-1.md for "
                             "experiment-1)")
    parser.add_argument("--html", metavar="FILE", default=None, help="with --report/--report-only: also write the "
                        "whole report as one self-contained HTML file (charts interactive offline)")
    parser.add_argument("--no-skip-existing", action="store_true")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from csr_core.experiment import DESIGNS, ExperimentConfig, run_experiment

    design = DESIGNS[args.design]
    if not args.report_only:
        cfg = ExperimentConfig.from_design(args.design, towers=args.towers, arms=args.arms, seeds=args.seeds,
                                           ship_seeds=args.ship_seeds, heads_dir=args.heads_dir,
                                           results_dir=args.results, xtd_max=args.xtd_max,
                                           skip_existing=not args.no_skip_existing)
        run_experiment(cfg)
    if args.report or args.report_only:
        from pathlib import Path

        from csr_core.paths import results_dir
        from csr_core.results import ResultsStore
        from csr_core.training import design_render, design_report

        root = Path(args.results) if args.results else results_dir()
        report = design_report.build_report(ResultsStore(root), design.run_set, towers=args.towers)
        for path in design_render.write(report, root):
            print(f"wrote {path}")
        if args.html:
            from csr_core._io import atomic_write_text
            from csr_core.training.design_html import render_html

            print(f"wrote {atomic_write_text(args.html, render_html(report))}")
    return 0
