"""How cost grows with the gallery: R@K time and memory from 1k to 100k captions, and embedding time vs captions.

1. Metrics (synthetic unit vectors, dim 512; one image per 5 captions; each caption = its image + noise, so R@K is
   meaningful and falls as the gallery grows): wall time and peak traced memory of `csr_core.metrics.
   retrieval_metrics` (t2i + i2t ranks, R@K). Time grows with queries x gallery (quadratic in N when both grow);
   memory stays near inputs + one `chunk x gallery` block — linear in N — while the full similarity matrix, never
   built, would grow quadratically (8 GB at 100k captions x 20k images).
2. Embedding: a text tower (MiniLM by default) on n real Flickr8k captions for growing n: time per caption stays
   flat, i.e. embedding is linear in the number of captions.

Not a test. Usage:

    python benchmarks/scaling.py                    # metrics 1k..100k captions, MiniLM on 250..2000 captions
    python benchmarks/scaling.py --quick            # metrics up to 20k, MiniLM on 100..800 captions
    python benchmarks/scaling.py --skip-embedding   # metrics only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import peak_rss_mb  # noqa: E402

FULL_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
QUICK_SIZES = (1_000, 2_000, 5_000, 10_000, 20_000)


def synthetic(n_captions: int, dim: int, captions_per_image: int, noise: float, seed: int):
    """Unit image vectors and captions = image + gaussian noise (renormalised); returns text, image, caption_image."""
    rng = np.random.default_rng(seed)
    n_images = max(1, n_captions // captions_per_image)
    image = rng.standard_normal((n_images, dim), dtype=np.float32)
    image /= np.linalg.norm(image, axis=1, keepdims=True)
    caption_image = np.repeat(np.arange(n_images), captions_per_image)[:n_captions]
    noise_vecs = rng.standard_normal((len(caption_image), dim), dtype=np.float32) / np.sqrt(dim)
    text = image[caption_image] + noise * noise_vecs
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    return text, image, caption_image


def metric_scaling(sizes, dim: int, chunk: int, noise: float, seed: int) -> list[dict]:
    from csr_core.metrics import retrieval_metrics

    rows = []
    print(f"R@K (t2i + i2t) on synthetic unit vectors, dim {dim}, 5 captions per image, chunk {chunk}")
    print("peak MiB = the most memory the metric call itself allocated (tracemalloc; inputs made before it)")
    print(f"{'captions':>9s} {'images':>7s} {'time s':>8s} {'ns/pair':>8s} {'peak MiB':>9s} {'inputs MiB':>10s} "
          f"{'full matrix MiB':>15s} {'t2i R@1':>8s} {'t2i R@10':>8s}", flush=True)
    for n in sizes:
        text, image, ci = synthetic(n, dim, 5, noise, seed)
        tracemalloc.start()
        t0 = time.perf_counter()
        res = retrieval_metrics(text, image, ci, chunk_size=chunk)
        wall = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        pairs = len(text) * len(image)
        row = {"captions": len(text), "images": len(image), "wall_s": wall, "ns_per_pair": wall / pairs * 1e9,
               "peak_mib": peak / 2**20, "inputs_mib": (text.nbytes + image.nbytes) / 2**20,
               "full_matrix_mib": pairs * 4 / 2**20, "t2i_r1": res.t2i_recall[1], "t2i_r10": res.t2i_recall[10]}
        rows.append(row)
        print(f"{row['captions']:9d} {row['images']:7d} {wall:8.2f} {row['ns_per_pair']:8.2f} {row['peak_mib']:9.0f} "
              f"{row['inputs_mib']:10.0f} {row['full_matrix_mib']:15.0f} {row['t2i_r1']:8.1f} {row['t2i_r10']:8.1f}",
              flush=True)
        del text, image
    first, last = rows[0], rows[-1]
    grow = last["captions"] / first["captions"]
    print(f"{grow:.0f}x captions (and images): time x{last['wall_s'] / first['wall_s']:.0f} (pairs x{grow * grow:.0f}),"
          f" peak memory x{last['peak_mib'] / first['peak_mib']:.1f}, full matrix would be "
          f"x{last['full_matrix_mib'] / first['full_matrix_mib']:.0f}; at {last['captions']} captions peak is "
          f"{last['peak_mib'] / last['full_matrix_mib']:.1%} of the full matrix")
    return rows


def embedding_scaling(tower_name: str, sizes, batch_size: int, threads: int | None) -> list[dict]:
    import torch

    from csr_core.datasets import load_dataset
    from csr_core.encoders import towers

    if threads:
        torch.set_num_threads(threads)
    captions = load_dataset("flickr8k", split="all").flat("en").texts
    if max(sizes) > len(captions):
        raise SystemExit(f"at most {len(captions)} captions available")
    tower = {"minilm": towers.MiniLMTower, "e5": towers.E5Tower}[tower_name](device="cpu")
    tower.encode(captions[:batch_size], batch_size=batch_size)  # warm-up: first-call allocations, lazy init
    rng = np.random.default_rng(0)
    print(f"\n{tower_name}: embedding n captions (batch {batch_size}, torch threads {torch.get_num_threads()})")
    print(f"{'captions':>9s} {'time s':>8s} {'ms/caption':>11s} {'captions/s':>11s}", flush=True)
    rows = []
    for n in sizes:
        idx = rng.choice(len(captions), size=n, replace=False)  # a fresh sample: no length bias across sizes
        texts = [captions[i] for i in idx]
        t0 = time.perf_counter()
        tower.encode(texts, batch_size=batch_size)
        wall = time.perf_counter() - t0
        rows.append({"captions": n, "wall_s": wall, "ms_per_caption": wall / n * 1e3})
        print(f"{n:9d} {wall:8.2f} {wall / n * 1e3:11.2f} {n / wall:11.1f}", flush=True)
    x = np.array([r["captions"] for r in rows], dtype=float)
    y = np.array([r["wall_s"] for r in rows])
    slope, intercept = np.polyfit(x, y, 1)
    r2 = 1 - ((y - (slope * x + intercept)) ** 2).sum() / ((y - y.mean()) ** 2).sum()
    per = [r["ms_per_caption"] for r in rows]
    print(f"linear fit: {slope * 1e3:.2f} ms/caption + {intercept:.2f} s, R^2 = {r2:.4f}; ms/caption spread "
          f"{min(per):.2f}..{max(per):.2f} over a {sizes[-1] // sizes[0]}x range of n")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="metrics up to 20k captions; embedding 100..800 captions")
    ap.add_argument("--sizes", type=int, nargs="+", default=None, help="caption counts for the metric part")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=2048, help="metric block size (csr_core.metrics chunk_size)")
    ap.add_argument("--noise", type=float, default=6.0, help="caption noise (higher = harder retrieval)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tower", default="minilm", choices=("minilm", "e5"))
    ap.add_argument("--embed-sizes", type=int, nargs="+", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the embedding part")
    ap.add_argument("--skip-embedding", action="store_true")
    ap.add_argument("--skip-metrics", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    out: dict = {}
    if not args.skip_metrics:
        sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
        out["metrics"] = metric_scaling(sizes, args.dim, args.chunk, args.noise, args.seed)
    if not args.skip_embedding:
        sizes = args.embed_sizes or ((100, 200, 400, 800) if args.quick else (250, 500, 1000, 2000))
        out["embedding"] = embedding_scaling(args.tower, sorted(sizes), args.batch_size, args.threads)
    out["process_peak_rss_mb"] = peak_rss_mb()
    print(f"process peak RSS {out['process_peak_rss_mb']:.0f} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
