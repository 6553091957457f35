"""Code-switching throughput: captions/s for BL-CS and ML-CS (p = 0.5) over the 29,000 Multi30K train captions.

Single-threaded (one core; --pin also pins the process to one CPU). Prints the first pass (cold word cache) and
the best warm pass, in wall-clock and in process CPU time (the fairer figure on a busy shared machine), with the
corpus switch ratio as a sanity check. Beside each, in the same run, the naive approach of CoSDA-ML-style augmenters
(whitespace split, one `random.random() < p` per token, a dict lookup, a random translation) as the baseline, and
the ratio ours / naive for the first pass (our word cache cold) and warm. Goals: >= 50,000 captions/s and >= 1.5x
the naive approach.

    .venv/bin/python benchmarks/codeswitch_bench.py [--repeats 5] [--data-dir ../shared/data] [--pin]
"""

from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from csr_core import paths  # noqa: E402
from csr_core.codeswitch import CodeSwitcher, corpus_switch_ratio  # noqa: E402
from csr_core.lexicon import load_muse  # noqa: E402

GOAL = 50_000
GOAL_RATIO = 1.5


def naive_switch(captions: list[str], tables: list[dict[str, list[str]]], p: float, seed: int) -> list[str]:
    """The standard baseline: whitespace tokens, one draw per token, a lookup in a random target language."""
    import random

    rng = random.Random(seed)
    draw, choice = rng.random, rng.choice
    out = []
    for caption in captions:
        words = caption.split()
        for i, word in enumerate(words):
            if draw() < p:
                translations = choice(tables).get(word.lower())
                if translations:
                    words[i] = choice(translations)
        out.append(" ".join(words))
    return out


def _timed(fn) -> tuple[float, float, object]:
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - start, time.process_time() - start_cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--p", type=float, default=0.5)
    parser.add_argument("--pin", action="store_true", help="pin to the first allowed CPU")
    args = parser.parse_args(argv)
    if args.pin and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    root = args.data_dir or paths.data_dir()
    train = root / "multi30k" / "task1" / "raw" / "train.en.gz"
    with gzip.open(train, "rt", encoding="utf-8") as handle:
        captions = [line.rstrip("\n") for line in handle]
    print(f"{len(captions)} captions from {train}")
    t0 = time.perf_counter()
    lexicons = {lang: load_muse(lang, root) for lang in ("de", "fr", "cs")}
    print(f"loaded MUSE en-de/fr/cs in {time.perf_counter() - t0:.2f} s")
    configs = [("BL-CS de", "bl", ["de"]), ("ML-CS de,fr,cs", "ml", ["de", "fr", "cs"])]
    ok = True
    n = len(captions)
    for name, mode, langs in configs:
        tables = [{w: list(t) for w, t in lexicons[lang].table.items()} for lang in langs]
        switcher = CodeSwitcher(lexicons, mode, p=args.p, seed=0, langs=langs)  # fresh: its word cache is cold
        ours, naive = [], []
        for _ in range(args.repeats + 1):  # interleaved, so both see the same machine load
            ours.append(_timed(lambda: switcher.switch_batch(captions)))
            naive.append(_timed(lambda: naive_switch(captions, tables, args.p, 0)))
        out = ours[-1][2]
        cold = ours[0][1]
        warm = min(cpu for _, cpu, _ in ours[1:])
        base = min(cpu for _, cpu, _ in naive)
        ratio_cold, ratio_warm = base / cold, base / warm
        ok &= n / warm >= GOAL and ratio_warm >= GOAL_RATIO
        print(f"{name:15s} p={args.p}: ours warm {n / warm:9,.0f} captions/CPU-s (wall {n / min(w for w, _, _ in ours[1:]):,.0f}), "
              f"first pass {n / cold:9,.0f}; naive {n / base:9,.0f}; ours/naive {ratio_cold:.2f}x first pass, "
              f"{ratio_warm:.2f}x warm; switch ratio {corpus_switch_ratio(out):.3f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs")
    print(f"goals {GOAL:,} captions/s and {GOAL_RATIO}x naive (warm): {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
