"""How much R@K (both directions) costs next to the bare matmul that produces the similarity matrix.

Not a test. Usage: ``python benchmarks/metrics_bench.py [--images 5000] [--captions 25000] [--dim 512]``.
Goal: ``retrieval_metrics`` (t2i + i2t ranks, R@K, mean/median rank) <= 2x the time of ``text @ image.T``.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from csr_core.metrics import retrieval_metrics  # noqa: E402


def _normalised(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def _best_of(repeats: int, fn) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _peak_mib(fn) -> tuple[float, object]:
    """Peak Python-visible allocation (numpy buffers are traced) while ``fn`` runs, in MiB."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 2**20, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--captions", type=int, default=25000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk-size", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    text = _normalised(rng, args.captions, args.dim)
    image = _normalised(rng, args.images, args.dim)
    caption_image = np.concatenate([np.arange(args.images), rng.integers(0, args.images, args.captions - args.images)])
    rng.shuffle(caption_image)

    def rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    # R@K first, so the ru_maxrss growth it causes is not hidden by the full matrix of the matmul
    rss0 = rss_mib()
    t_rk, res = _best_of(args.repeats, lambda: retrieval_metrics(text, image, caption_image,
                                                                  chunk_size=args.chunk_size))
    rss_rk = rss_mib()
    t_mm, _ = _best_of(args.repeats, lambda: text @ image.T)
    rss_mm = rss_mib()
    peak_rk, _ = _peak_mib(lambda: retrieval_metrics(text, image, caption_image, chunk_size=args.chunk_size))
    peak_mm, _ = _peak_mib(lambda: text @ image.T)

    print(f"{args.captions} captions x {args.images} images, dim {args.dim}, float32, chunk {args.chunk_size}, "
          f"best of {args.repeats}")
    print(f"bare matmul (full {args.captions}x{args.images} matrix): {t_mm:8.3f} s   peak {peak_mm:8.1f} MiB")
    print(f"retrieval_metrics (t2i + i2t):            {t_rk:8.3f} s   peak {peak_rk:8.1f} MiB")
    print(f"ratio R@K / matmul: {t_rk / t_mm:.2f}x   (goal <= 2x)")
    print(f"ru_maxrss growth: R@K +{rss_rk - rss0:.0f} MiB, then matmul +{rss_mm - rss_rk:.0f} MiB "
          f"(inputs {(text.nbytes + image.nbytes) / 2**20:.0f} MiB, full matrix "
          f"{args.captions * args.images * 4 / 2**20:.0f} MiB)")
    print("t2i R@1/5/10: " + " / ".join(f"{res.t2i_recall[k]:.2f}" for k in (1, 5, 10))
          + "   i2t R@1/5/10: " + " / ".join(f"{res.i2t_recall[k]:.2f}" for k in (1, 5, 10)))


if __name__ == "__main__":
    main()
