"""Side by side with LAION's CLIP_benchmark: same open_clip weights file, same Flickr8k photos and captions.

Runs `clip_benchmark eval --task zeroshot_retrieval` (A) and our `python -m csr_core eval` (B, cold embedding cache),
then ours again on the cache B filled (warm), alternately: A B warm, A B warm, ... Each run is a separate process,
measured alone (os.wait4): wall time, CPU time (user + system, DataLoader workers included) and peak RSS. Checks that
R@1/5/10 agree in both directions and prints the ratios.

Not a test. Usage (writes only to a temp dir; data and weights are never copied into the repo):

    python benchmarks/vs_clip_benchmark.py                  # full: 1000 photos x 5 captions, ViT-B-32, 3 pairs
    python benchmarks/vs_clip_benchmark.py --quick          # 200 photos, ViT-B-32, 3 pairs
    python benchmarks/vs_clip_benchmark.py --tiny --photos 50 --pairs 1   # seconds: the tiny test config

The weights are a random init (fixed seed) of the architecture saved as safetensors: both tools load that file,
so R@K is near chance but must be the same; the timing is what matters. CLIP_benchmark runs with --no_amp (its CPU
autocast is pathologically slow) and its defaults otherwise (batch 64, 4 DataLoader workers).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import REPO, ChildRun, dump_json, make_open_clip_checkpoint, run_child  # noqa: E402

TINY_CONFIG = REPO / "tests" / "assets" / "csr-test-tiny-vit.json"
KS = (1, 5, 10)
# clip_benchmark's metric names -> our direction: "image retrieval" = text query -> image (t2i).
THEIR_KEYS = {"t2i": "image_retrieval_recall@{k}", "i2t": "text_retrieval_recall@{k}"}

# Launcher that registers a local model config with open_clip before handing over to clip_benchmark's own CLI
# (clip_benchmark has no option for a local config; for built-in architectures we call its console script).
_CB_LAUNCHER = (
    "import sys, open_clip; open_clip.add_model_config(sys.argv[1]); "
    "sys.argv = ['clip_benchmark'] + sys.argv[2:]; from clip_benchmark.cli import main; main()"
)


def write_annotations(n_photos: int | None, out: Path) -> tuple[Path, Path, int, int]:
    """The photos our eval uses (`--max-images n` = ImageTextSet.subset(n), seed 0) as clip_benchmark's
    `image,caption` file. Returns (file, image folder, photos, captions).

    Written raw (no CSV quoting): clip_benchmark splits each line at '.jpg,' and keeps the rest verbatim, so the
    caption strings it sees are exactly ours.
    """
    from csr_core.datasets import load_dataset

    ds = load_dataset("flickr8k", split="all")
    if n_photos and n_photos < len(ds):
        ds = ds.subset(n_photos)
    folders = {Path(p).parent for p in ds.image_paths}
    if len(folders) != 1:
        raise SystemExit(f"photos come from several folders {folders}; clip_benchmark needs one --dataset_root")
    lines = ["image,caption"]
    n_caps = 0
    for path, caps in zip(ds.image_paths, ds.captions["en"]):
        for cap in caps:
            if "\n" in cap or ".jpg," in cap:
                raise SystemExit(f"caption of {path.name} cannot be written in clip_benchmark's layout: {cap!r}")
            lines.append(f"{Path(path).name},{cap}")
            n_caps += 1
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out, folders.pop(), len(ds), n_caps


def their_cmd(arch: str, ckpt: Path, images: Path, ann: Path, out_json: Path, config: Path | None) -> list[str]:
    args = [
        "eval", "--dataset", "flickr8k", "--dataset_root", str(images), "--annotation_file", str(ann),
        "--split", "test", "--model", arch, "--pretrained", str(ckpt), "--task", "zeroshot_retrieval",
        "--recall_k", *map(str, KS), "--no_amp", "--output", str(out_json),
    ]
    if config is not None:
        return [sys.executable, "-c", _CB_LAUNCHER, str(config), *args]
    script = Path(sys.executable).parent / "clip_benchmark"
    if script.is_file():
        return [str(script), *args]
    launcher = "import sys; sys.argv[0] = 'clip_benchmark'; from clip_benchmark.cli import main; main()"
    return [sys.executable, "-c", launcher, *args]


def our_cmd(model: str, n_photos: int | None, out_dir: Path) -> list[str]:
    cmd = [sys.executable, "-m", "csr_core", "eval", "--model", model, "--dataset", "flickr8k", "--split", "all",
           "--langs", "en", "--settings", "monolingual", "--k", *map(str, KS), "--out", str(out_dir), "--quiet"]
    if n_photos:
        cmd += ["--max-images", str(n_photos)]
    return cmd


def their_recalls(out_json: Path) -> dict[tuple[str, int], float]:
    metrics = json.loads(out_json.read_text())["metrics"]
    return {(d, k): 100.0 * float(metrics[key.format(k=k)]) for d, key in THEIR_KEYS.items() for k in KS}


def our_recalls(out_dir: Path) -> tuple[dict[tuple[str, int], float], dict[str, int]]:
    import pandas as pd

    files = sorted(out_dir.glob("runs/*/rows.parquet"))
    if len(files) != 1:
        raise SystemExit(f"expected one run in {out_dir}, found {len(files)}")
    rows = pd.read_parquet(files[0])
    rec = rows[rows["metric"] == "recall"]
    values = {(r.direction, int(r.k)): float(r.value) for r in rec.itertuples()}
    n = {d: int(rec[rec["direction"] == d]["n_queries"].iloc[0]) for d in ("t2i", "i2t")}
    return values, n


def compare(ours: dict, theirs: dict, n_queries: dict[str, int]) -> list[str]:
    """Differences counted in queries (a recall is hits / n): 'agree' means the same number of hits."""
    problems = []
    for (d, k), v in sorted(ours.items()):
        diff_q = abs(v - theirs[(d, k)]) * n_queries[d] / 100.0
        if diff_q >= 0.5:
            problems.append(f"{d} R@{k}: ours {v:.2f} vs clip_benchmark {theirs[(d, k)]:.2f} ({diff_q:.0f} queries)")
    return problems


def _check(run: ChildRun) -> ChildRun:
    if run.rc != 0:
        sys.stderr.write(run.stdout[-3000:] + "\n" + run.stderr[-5000:] + "\n")
        raise SystemExit(f"{run.label} failed with exit code {run.rc}")
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="200 photos (1000 captions) instead of all 1000")
    ap.add_argument("--photos", type=int, default=None, help="number of photos (default 1000, --quick 200)")
    ap.add_argument("--tiny", action="store_true", help="the tiny test config instead of ViT-B-32 (plumbing check)")
    ap.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (random weights, fixed seed)")
    ap.add_argument("--pairs", type=int, default=3, help="A B (+warm) repetitions")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-cache runs of ours")
    ap.add_argument("--workdir", default=None, help="where checkpoint, annotations and outputs go (default: temp)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (checkpoint, logs, outputs)")
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    n_photos = args.photos or (200 if args.quick else None)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="csr-vs-cb-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, n_photos, work)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, n_photos: int | None, work: Path) -> int:
    config = TINY_CONFIG if args.tiny else None
    arch = config.stem if config else args.arch
    ckpt = make_open_clip_checkpoint(arch, work, seed=0, config_path=config)
    ann, images, n_img, n_cap = write_annotations(n_photos, work / "annotations.csv")
    model = f"open_clip-config:{config}@{ckpt}" if config else f"open_clip:{arch}@{ckpt}"
    print(f"model {arch} (random init, seed 0) from {ckpt.name}; {n_img} photos, {n_cap} captions; "
          f"{args.pairs} pair(s); cpu cores {os.cpu_count()}", flush=True)

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    records: list[dict] = []
    agreement: list[str] = []
    logs = work / "logs"
    for i in range(args.pairs):
        out_json = work / f"cb-{i}.json"
        for stale in (out_json, work / f"ours-{i}", work / f"ours-warm-{i}", work / f"cache-{i}"):  # a reused workdir
            shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
        a = _check(run_child(f"clip_benchmark-{i}", their_cmd(arch, ckpt, images, ann, out_json, config),
                             env={**env, "CSR_CACHE_DIR": str(work / "unused-cache")}, cwd=work, log_dir=logs))
        theirs = their_recalls(out_json)
        cache = work / f"cache-{i}"  # fresh per pair: B is always cold
        b = _check(run_child(f"ours-cold-{i}", our_cmd(model, n_photos, work / f"ours-{i}"),
                             env={**env, "CSR_CACHE_DIR": str(cache)}, cwd=REPO, log_dir=logs))
        ours, nq = our_recalls(work / f"ours-{i}")
        problems = compare(ours, theirs, nq)
        runs = [("clip_benchmark", a), ("ours cold", b)]
        if not args.no_warm:
            c = _check(run_child(f"ours-warm-{i}", our_cmd(model, n_photos, work / f"ours-warm-{i}"),
                                 env={**env, "CSR_CACHE_DIR": str(cache)}, cwd=REPO, log_dir=logs))
            warm, _ = our_recalls(work / f"ours-warm-{i}")
            problems += [f"warm: {p}" for p in compare(warm, ours, nq)]
            runs.append(("ours warm", c))
        shutil.rmtree(cache, ignore_errors=True)
        for tool, r in runs:
            records.append({"pair": i, "tool": tool, **r.summary()})
            print(f"pair {i}  {tool:15s} wall {r.wall_s:8.1f} s  cpu {r.cpu_s:8.1f} s  "
                  f"peak RSS {r.peak_rss_mb:7.0f} MiB", flush=True)
        line = "  ".join(f"{d} R@{k} {ours[(d, k)]:.2f}/{theirs[(d, k)]:.2f}" for d in ("t2i", "i2t") for k in KS)
        print(f"pair {i}  R@K ours/clip_benchmark: {line}  -> {'AGREE' if not problems else 'DIFFER'}", flush=True)
        agreement += [f"pair {i}: {p}" for p in problems]

    summary = summarise(records)
    print_summary(summary, agreement)
    result = {"model": arch, "photos": n_img, "captions": n_cap, "pairs": args.pairs, "runs": records,
              "summary": summary, "recall_agree": not agreement, "disagreements": agreement,
              "recalls_ours": {f"{d}@{k}": v for (d, k), v in ours.items()},
              "recalls_clip_benchmark": {f"{d}@{k}": v for (d, k), v in theirs.items()}}
    if args.json:
        dump_json(Path(args.json), result)
    return 0 if not agreement else 1


def summarise(records: list[dict]) -> dict:
    """Median per tool and ratios of medians, plus the per-pair ratios (so the spread is visible)."""
    tools = sorted({r["tool"] for r in records})
    med = {t: {m: statistics.median(r[m] for r in records if r["tool"] == t)
               for m in ("wall_s", "cpu_s", "peak_rss_mb")} for t in tools}
    out: dict = {"median": med, "driver_rss_mb": max(r["parent_rss_mb"] for r in records)}
    cb = med.get("clip_benchmark")
    for t in tools:
        if t == "clip_benchmark" or not cb:
            continue
        out[f"{t} / clip_benchmark"] = {m: med[t][m] / cb[m] for m in med[t]}
        pairs = sorted({r["pair"] for r in records})
        per_pair = []
        for p in pairs:
            a = next(r for r in records if r["pair"] == p and r["tool"] == "clip_benchmark")
            b = next((r for r in records if r["pair"] == p and r["tool"] == t), None)
            if b:
                per_pair.append(b["wall_s"] / a["wall_s"])
        out[f"{t} / clip_benchmark wall per pair"] = per_pair
        cpu_pair = [next(r for r in records if r["pair"] == p and r["tool"] == t)["cpu_s"]
                    / next(r for r in records if r["pair"] == p and r["tool"] == "clip_benchmark")["cpu_s"]
                    for p in pairs if any(r["pair"] == p and r["tool"] == t for r in records)]
        out[f"{t} / clip_benchmark cpu per pair"] = cpu_pair
    return out


def print_summary(summary: dict, agreement: list[str]) -> None:
    print(f"\nmedians over pairs (driver RSS at spawn, a floor for every peak RSS: "
          f"{summary['driver_rss_mb']:.0f} MiB):")
    for t, m in summary["median"].items():
        print(f"  {t:15s} wall {m['wall_s']:8.1f} s  cpu {m['cpu_s']:8.1f} s  peak RSS {m['peak_rss_mb']:7.0f} MiB")
    for key, val in summary.items():
        if key.endswith("/ clip_benchmark"):
            speed = 1.0 / val["wall_s"] if val["wall_s"] else float("inf")
            print(f"  {key}: wall {val['wall_s']:.3f}x ({speed:.1f}x faster), cpu {val['cpu_s']:.3f}x, "
                  f"peak RSS {val['peak_rss_mb']:.2f}x")
        elif key.endswith("per pair"):
            print(f"  {key}: {', '.join(f'{v:.3f}x' for v in val)}  (median {statistics.median(val):.3f}x = "
                  f"{1 / statistics.median(val):.1f}x faster)")
    print("R@K agree in every run" if not agreement else "R@K DIFFER:\n  " + "\n  ".join(agreement))


if __name__ == "__main__":
    raise SystemExit(main())
