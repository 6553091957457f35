"""How much R@K (both directions) costs next to the bare matmul that produces the similarity matrix.

Not a test. Usage: ``python benchmarks/metrics_bench.py [--images 5000] [--captions 25000] [--dim 512]``.
Goal: the path ``evaluate`` uses (``image_text_ranks``: t2i + i2t ranks in one pass, then R@K) <= 1.5x the time of
``text @ image.T``, in the same run. ``--uncaptioned`` leaves that share of the images without a caption (t2i
distractors only), as zh/ar test photos are.
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

from csr_core.metrics import image_text_ranks, recall_at_k, retrieval_metrics  # noqa: E402


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
    ap.add_argument("--chunk-size", type=int, default=None, help="query rows per block (default: the metrics' "
                    "element budget)")
    ap.add_argument("--uncaptioned", type=float, default=0.0, help="share of images with no caption (0..0.9)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    text = _normalised(rng, args.captions, args.dim)
    image = _normalised(rng, args.images, args.dim)
    captioned = np.sort(rng.permutation(args.images)[: max(1, round(args.images * (1 - args.uncaptioned)))])
    caption_image = np.concatenate([captioned, rng.choice(captioned, args.captions - len(captioned))])
    rng.shuffle(caption_image)

    def evaluate_path():  # what csr_core.evaluate's monolingual/multilingual settings do per language
        r = image_text_ranks(text, image, caption_image, chunk_size=args.chunk_size)
        return recall_at_k(r.t2i), recall_at_k(r.i2t)

    def rss_mib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    # R@K first, so the ru_maxrss growth it causes is not hidden by the full matrix of the matmul
    rss0 = rss_mib()
    t_rk, (t2i_r, i2t_r) = _best_of(args.repeats, evaluate_path)
    rss_rk = rss_mib()
    t_mm, _ = _best_of(args.repeats, lambda: text @ image.T)
    rss_mm = rss_mib()
    peak_rk, _ = _peak_mib(evaluate_path)
    t_full = (_best_of(args.repeats, lambda: retrieval_metrics(text, image, caption_image,
                                                               chunk_size=args.chunk_size))[0]
              if len(captioned) == args.images else float("nan"))  # needs every image captioned
    peak_mm, _ = _peak_mib(lambda: text @ image.T)

    print(f"{args.captions} captions x {args.images} images ({args.images - len(captioned)} uncaptioned), dim "
          f"{args.dim}, float32, chunk {args.chunk_size or 'auto'}, best of {args.repeats}")
    print(f"bare matmul (full {args.captions}x{args.images} matrix): {t_mm:8.3f} s   peak {peak_mm:8.1f} MiB")
    print(f"evaluate's path (image_text_ranks + R@K): {t_rk:8.3f} s   peak {peak_rk:8.1f} MiB")
    print(f"retrieval_metrics (CLIP_benchmark-shaped): {t_full:8.3f} s")
    print(f"ratio R@K / matmul: {t_rk / t_mm:.2f}x   (goal <= 1.5x)")
    print(f"ru_maxrss growth: R@K +{rss_rk - rss0:.0f} MiB, then matmul +{rss_mm - rss_rk:.0f} MiB "
          f"(inputs {(text.nbytes + image.nbytes) / 2**20:.0f} MiB, full matrix "
          f"{args.captions * args.images * 4 / 2**20:.0f} MiB)")
    print("t2i R@1/5/10: " + " / ".join(f"{t2i_r[k]:.2f}" for k in (1, 5, 10))
          + "   i2t R@1/5/10: " + " / ".join(f"{i2t_r[k]:.2f}" for k in (1, 5, 10)))


if __name__ == "__main__":
    main()
