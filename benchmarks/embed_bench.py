"""Embedding throughput: images/s and captions/s for the embedded towers and an open_clip ViT-B-32, cold vs warm cache.

For each model a separate child process (so peak RSS is that model's alone) loads the model, embeds the shared
Flickr8k photos and/or their English captions through `csr_core.embed_cache.cached_encode_images/texts` with an empty
temp cache (cold), then again (warm: cache hits). Before the warm pass every in-process memo is dropped — image
content hashes, the encoder fingerprint and weight-file hashes — so the warm figure is what a fresh process pays.

Not a test. Usage:

    python benchmarks/embed_bench.py --quick          # 100 photos, 500 captions
    python benchmarks/embed_bench.py                  # all 1000 photos, 5000 captions (minutes on 2 cores)
    python benchmarks/embed_bench.py --models minilm,e5 --photos 200

Goals (issue 4): warm >= 50x faster than cold; peak RSS <= 2 GB with the embedded towers.
The ViT-B-32 has random weights from its config (`open_clip:ViT-B-32`): timing only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import REPO, current_rss_mb, peak_rss_mb, run_child  # noqa: E402

# name -> (kinds it embeds, how to build it)
MODELS = {
    "effnet-lite0": ("image",),
    "minilm": ("text",),
    "e5": ("text",),
    "open_clip-vit-b-32": ("image", "text"),
}
EMBEDDED = ("effnet-lite0", "minilm", "e5")
RSS_GOAL_MB = 2048.0
WARM_GOAL = 50.0


class TowerEncoder:
    """A tower (csr_core.encoders.towers) seen through the Encoder methods the embedding cache calls."""

    def __init__(self, tower, kind: str) -> None:
        self.tower, self.kind = tower, kind
        self.name, self.dim = tower.name, tower.dim

    @property
    def fingerprint(self) -> str:
        return self.tower.fingerprint

    def encode_texts(self, texts, lang=None, batch_size=64, progress=None):
        return self.tower.encode(texts, batch_size=batch_size, progress=progress)

    def encode_images(self, items, batch_size=32, progress=None):
        return self.tower.encode(items, batch_size=batch_size, progress=progress)


def build(model: str):
    from csr_core.encoders import towers

    if model == "effnet-lite0":
        return TowerEncoder(towers.EfficientNetLite0Tower(device="cpu"), "image")
    if model == "minilm":
        return TowerEncoder(towers.MiniLMTower(device="cpu"), "text")
    if model == "e5":
        return TowerEncoder(towers.E5Tower(device="cpu"), "text")
    if model == "open_clip-vit-b-32":
        from csr_core.encoders.registry import load_encoder

        return load_encoder("open_clip:ViT-B-32", device="cpu")
    raise SystemExit(f"unknown model {model!r}; choose from {', '.join(MODELS)}")


def forget_memos(enc) -> None:
    """Drop what a fresh process would not have: image hashes, the fingerprint, weight-file hashes."""
    from csr_core.embed_cache import clear_hash_memo
    from csr_core.encoders import towers

    clear_hash_memo()
    towers._sha256_cached.cache_clear()
    if hasattr(enc, "_fingerprint"):
        enc._fingerprint = None
    tower = getattr(enc, "tower", None)
    if tower is not None:
        tower.__dict__.pop("fingerprint", None)


def child(model: str, n_photos: int | None, out_json: Path) -> None:
    """Runs inside the child process: load, cold pass, warm pass; writes figures as JSON."""
    from csr_core.datasets import load_dataset
    from csr_core.embed_cache import CacheReport, EmbeddingCache, cached_encode_images, cached_encode_texts

    ds = load_dataset("flickr8k", split="all")
    if n_photos and n_photos < len(ds):
        ds = ds.subset(n_photos)
    photos, captions = list(ds.image_paths), list(ds.flat("en").texts)
    t0 = time.perf_counter()
    enc = build(model)
    res: dict = {"model": model, "load_s": time.perf_counter() - t0, "rss_after_load_mb": current_rss_mb(),
                 "photos": len(photos), "captions": len(captions)}
    with tempfile.TemporaryDirectory(prefix="csr-embed-bench-") as tmp:
        cache = EmbeddingCache(Path(tmp))
        for kind in MODELS[model]:
            items = photos if kind == "image" else captions
            fn = cached_encode_images if kind == "image" else cached_encode_texts
            kw = {} if kind == "image" else {"lang": "en"}
            figures = {}
            for phase in ("cold", "warm"):
                if phase == "warm":
                    forget_memos(enc)
                report = CacheReport()
                w0, c0 = time.perf_counter(), time.process_time()
                vecs = fn(enc, items, cache=cache, report=report, **kw)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
                figures[phase] = {"wall_s": wall, "cpu_s": cpu, "per_s": len(items) / wall,
                                  "encoded": report.encoded, "hits": report.hits}
                if phase == "cold":
                    cold_vecs = vecs
                elif not (vecs.shape == cold_vecs.shape and (vecs == cold_vecs).all()):
                    raise SystemExit(f"{model} {kind}: warm vectors differ from cold ones")
            figures["warm_speedup"] = figures["cold"]["wall_s"] / figures["warm"]["wall_s"]
            res[kind] = figures
    res["peak_rss_mb"] = peak_rss_mb()
    out_json.write_text(json.dumps(res, indent=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 photos / 500 captions")
    ap.add_argument("--photos", type=int, default=None, help="number of photos (default 1000; --quick 100)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated from {', '.join(MODELS)}")
    ap.add_argument("--threads", type=int, default=None, help="torch threads in the child (default: torch's own)")
    ap.add_argument("--json", default=None, help="also write all figures to this JSON file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    n_photos = args.photos or (100 if args.quick else None)

    if args.child:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        child(args.child, n_photos, Path(args.child_out))
        return 0

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    results, ok = [], True
    print(f"{'model':20s} {'kind':6s} {'n':>5s} {'cold/s':>9s} {'warm/s':>10s} {'warm x':>8s} {'load s':>7s} "
          f"{'peak RSS':>9s}", flush=True)
    with tempfile.TemporaryDirectory(prefix="csr-embed-bench-out-") as tmp:
        for model in models:
            out = Path(tmp) / f"{model}.json"
            cmd = [sys.executable, str(Path(__file__).resolve()), "--child", model, "--child-out", str(out)]
            if n_photos:
                cmd += ["--photos", str(n_photos)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            run = run_child(model, cmd, env=env, cwd=REPO, log_dir=Path(tmp) / "logs")
            if run.rc != 0:
                sys.stderr.write(run.stderr[-4000:])
                raise SystemExit(f"{model}: child failed with exit code {run.rc}")
            res = json.loads(out.read_text())
            res["process_peak_rss_mb"] = run.peak_rss_mb
            results.append(res)
            for kind in MODELS[model]:
                f = res[kind]
                n = res["photos"] if kind == "image" else res["captions"]
                print(f"{model:20s} {kind:6s} {n:5d} {f['cold']['per_s']:9.1f} {f['warm']['per_s']:10.0f} "
                      f"{f['warm_speedup']:7.0f}x {res['load_s']:7.1f} {run.peak_rss_mb:7.0f} MB", flush=True)
                ok &= f["warm_speedup"] >= WARM_GOAL
            if model in EMBEDDED:
                ok &= run.peak_rss_mb <= RSS_GOAL_MB
    print(f"goals: warm >= {WARM_GOAL:g}x cold, embedded towers peak RSS <= {RSS_GOAL_MB:g} MB: "
          f"{'MET' if ok else 'NOT MET'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
