"""Code-switching throughput: captions/s for BL-CS and ML-CS (p = 0.5) over the 29,000 Multi30K train captions.

Single-threaded (one core; --pin also pins the process to one CPU). Prints the first pass (cold word cache) and
the best warm pass, in wall-clock and in process CPU time (the fairer figure on a busy shared machine), with the
corpus switch ratio as a sanity check. Goal: >= 50,000 captions/s.

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
    configs = [("BL-CS de", CodeSwitcher(lexicons, "bl", p=args.p, seed=0, langs=["de"])),
               ("ML-CS de,fr,cs", CodeSwitcher(lexicons, "ml", p=args.p, seed=0, langs=["de", "fr", "cs"]))]
    ok = True
    for name, switcher in configs:
        wall, cpu = [], []
        for _ in range(args.repeats + 1):
            start, start_cpu = time.perf_counter(), time.process_time()
            out = switcher.switch_batch(captions)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        n = len(captions)
        warm_wall, warm_cpu = n / min(wall[1:]), n / min(cpu[1:])
        ok &= max(warm_wall, warm_cpu) >= GOAL
        print(f"{name:15s} p={args.p}: warm {warm_wall:9,.0f} captions/s wall, {warm_cpu:9,.0f} per CPU-second "
              f"(best of {args.repeats}); cold {n / wall[0]:9,.0f} wall; switch ratio {corpus_switch_ratio(out):.3f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average {load:.2f} on {os.cpu_count()} CPUs")
    print(f"goal {GOAL:,} captions/s: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
