"""Evaluate a model on a dataset in the chosen settings and append one run to the results store.

Examples:
  python -m csr_core eval --model csr-mini --dataset flickr8k-multi30k --langs en,de,fr,cs
  python -m csr_core eval --model csr-mini-m --dataset xtd10 --settings cross --langs en,de,ja,zh
  python -m csr_core eval --model open_clip:ViT-B-32/openai --dataset flickr8k-multi30k \\
      --settings monolingual,cs-queries --cs-ps 0 0.5 1 --k 1 5 10 --max-images 200
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from csr_core.settings import SETTING_NAMES

NAME = "eval"
HELP = f"evaluate a model ({', '.join(SETTING_NAMES)}) and write tidy rows to results/"


EVAL_FLAG_HELP = {
    "model": "encoder name, e.g. csr-mini, csr-mini-m:mlcs-de-fr-cs, open_clip:ViT-B-32/openai, "
             "hf:openai/clip-vit-base-patch32 (see `python -m csr_core models`)",
    "dataset": "dataset name (see `python -m csr_core datasets`; jsonl:PATH for your own folder)",
    "split": "split of the dataset",
    "langs": "comma-separated, e.g. en,de,fr",
    "settings": f"comma-separated from {','.join(SETTING_NAMES)}",
    "ks": "recall cut-offs",
    "seed": "seed for code-switching and bootstrap CIs",
    "cs_modes": "code-switching modes for cs-queries",
    "cs_ps": "code-switching probabilities for cs-queries",
    "cs_langs": "switch targets (default: --langs minus en)",
    "max_images": "quick mode: evaluate on the first N photos",
    "train_arm": "label of the training arm (default: the arm a csr-mini name says, e.g. blcs-de)",
    "allow_leakage": "evaluate even on the model's training photos",
    "n_resamples": "bootstrap resamples for the confidence intervals",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from csr_core.commands._config_args import add_config_arguments, folder_path
    from csr_core.evaluate import EvalConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, EvalConfig, help=EVAL_FLAG_HELP, skip=("dataset_options",), flags={"ks": "--k"},
                         defaults={"dataset": "flickr8k-multi30k"})
    parser.add_argument("--image-root", default=None, help="image folder for datasets whose photos you supply")
    parser.add_argument("--skip-unreadable", action="store_true",
                        help="leave out missing or unreadable images (reported as skipped) instead of stopping")
    parser.add_argument("--allow-duplicate-images", action="store_true",
                        help="evaluate even when one photo is listed twice in the gallery (same file or identical "
                             "bytes; refused by default: it corrupts Recall@K); the run is labelled")
    parser.add_argument("--out", type=folder_path, default=None, help="results folder (default: results/ or $CSR_RESULTS_DIR)")
    parser.add_argument("--skip-existing", action="store_true", help="do nothing if an identical run exists")
    parser.add_argument("--backend", choices=("local", "ray"), default="local",
                        help="encode in this process (default) or sharded over Ray actors: a local Ray of --workers "
                             "processes, or the cluster at --ray-address (photos must be readable on every node)")
    parser.add_argument("--workers", type=int, default=2, help="Ray actors for --backend ray (each loads the model)")
    parser.add_argument("--ray-address", default=None, help="an existing Ray cluster (e.g. ray://head:10001 or auto)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import contextlib
    from pathlib import Path

    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore, build_manifest

    from csr_core.commands._config_args import config_from_args

    options: dict = {"image_root": args.image_root} if args.image_root else {}
    if args.skip_unreadable:
        options["skip_unreadable"] = True
    config = config_from_args(EvalConfig, args, dataset_options=options)
    store = ResultsStore(Path(args.out) if args.out else None)
    store.check_writable()  # before any model is built: a file or read-only --out fails now, not after the eval
    if args.backend == "ray":
        from csr_core.distributed import ray_available
        from csr_core.errors import CSRError

        if args.workers < 1:
            raise CSRError(f"--workers must be >= 1, got {args.workers}")
        ok, why = ray_available()
        if not ok:
            raise CSRError(f"--backend ray: {why}")
    elif args.workers != 2 or args.ray_address:
        from csr_core.errors import CSRError

        raise CSRError("--workers and --ray-address apply to --backend ray only")
    key = build_manifest(config.params())["params_key"]
    # --skip-existing holds the params key's lock from the check to the write: of two identical evals started
    # together one runs, the other waits and then skips
    with store.claim(key) if args.skip_existing else contextlib.nullcontext():
        if args.skip_existing:
            existing = store.find_runs(key)
            if existing:
                print(f"skipped: identical run already in {store.root}: {', '.join(existing)}")
                return 0
        progress = None if args.quiet else _TqdmProgress()
        pool = None
        try:
            if args.backend == "ray":
                from csr_core.distributed import RayEncoderPool

                pool = RayEncoderPool(config.model, args.workers, address=args.ray_address)
            outcome = run_evaluation(config, encoder=pool, store=store, progress=progress, cancel=threading.Event(),
                                     allow_duplicate_images=args.allow_duplicate_images)
        finally:
            if pool is not None:
                pool.close()
            if progress is not None:
                progress.close()
    print(summary_table(outcome.rows, outcome.languages))
    for note in outcome.notes:
        print(f"note: {note}")
    print(f"run {outcome.run_id}: {len(outcome.rows)} rows, {len(outcome.ranks)} per-query ranks -> {store.root}")
    return 0


class _TqdmProgress:
    """One tqdm bar per stage, written to stderr so the summary on stdout stays clean."""

    def __init__(self) -> None:
        self.bar: Any = None  # a tqdm bar while a stage runs
        self.label: str | None = None

    def __call__(self, label: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if label != self.label:
            self.close()
            self.label = label
            self.bar = tqdm(total=total, desc=label, file=sys.stderr, leave=False)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def summary_table(rows, languages: dict[str, dict] | None = None) -> str:
    """One screen: R@K per setting/direction/language with the CI, the query count, each language's provenance (what
    its captions are: human translation, independent, translated, machine) and a flag where too few queries."""
    from csr_core.datasets.types import PROVENANCE_LABELS

    recall = rows[rows["metric"] == "recall"].copy()
    if recall.empty:
        return "(no recall rows)"
    recall["lang"] = [q if q not in ("img", "") else d for q, d in zip(recall["query_lang"], recall["doc_lang"])]
    recall.loc[recall["direction"] == "t2t", "lang"] = recall["query_lang"] + ">" + recall["doc_lang"]
    recall["cell"] = [
        f"{v:5.1f} [{lo:4.1f},{hi:4.1f}]" + ("*" if note else "")
        for v, lo, hi, note in zip(recall["value"], recall["ci_low"], recall["ci_high"], recall["note"])
    ]
    recall["cs"] = [f"{m} {langs} p={p:g}" if m else "" for m, langs, p in
                    zip(recall["cs_mode"], recall["cs_langs"], recall["cs_p"])]
    index = ["setting", "direction", "cs", "lang"]
    table = recall.pivot_table(index=index, columns="k", values="cell", aggfunc="first")
    table.columns = [f"R@{k}" for k in table.columns]
    table["queries"] = recall.groupby(index)["n_queries"].first()
    if languages:
        def provenance(label: str) -> str:
            langs = [part for part in label.split(">") if part in languages]
            return " > ".join(PROVENANCE_LABELS.get(languages[x].get("provenance", ""), "?") for x in langs)

        table["captions"] = [provenance(lang) for lang in table.index.get_level_values("lang")]
    text = table.to_string()
    if recall["note"].astype(bool).any():
        text += "\n* fewer than 30 queries: not statistically meaningful"
    return text + "\n"
