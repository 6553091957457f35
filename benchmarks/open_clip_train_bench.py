"""open_clip fine-tuning through open_clip_train (`csr-lab finetune --model`): step time, samples/s, peak memory.

    python benchmarks/open_clip_train_bench.py                       # CPU: tiny config, 1 and 2 processes
    python benchmarks/open_clip_train_bench.py --model ViT-B-32 --photos 64 --batch 32 --nproc 1
    python benchmarks/open_clip_train_bench.py --gpu --model ViT-B-32 --photos 663 --batch 128 --precision amp \\
        --nproc 1 2                                                    # on a GPU machine: LiT ViT-B-32, Multi30K

Weights are a seeded random init of the architecture (timing does not depend on them; nothing is downloaded).
Per mode it prints the trainer's mean step time and samples/s (from open_clip_train's own log), the wall time of the
whole command (process start, CSV, model build, registration) and the peak RSS of the process tree; with --gpu also
the peak GPU memory (nvidia-smi sampled every 0.2 s). Everything goes to a temp dir.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, gpu_peak_sampler, make_open_clip_checkpoint, run_child  # noqa: E402

TINY = REPO / "tests" / "assets" / "csr-test-tiny-vit.json"
_STEP = re.compile(r"Batch \(t\): ([0-9.]+), ([0-9.e+]+)/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="", help="open_clip architecture (default: the tiny test config)")
    parser.add_argument("--arm", default="mlcs-de-fr-cs")
    parser.add_argument("--photos", type=int, default=32, help="training photos (5 captions each)")
    parser.add_argument("--batch", type=int, default=16, help="global batch (split over processes)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--unlock-image", action="store_true", help="train the image tower too (default LiT)")
    parser.add_argument("--gpu", action="store_true", help="also sample GPU memory with nvidia-smi")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="csr-bench-octrain-"))
    if args.model:
        weights = make_open_clip_checkpoint(args.model, work)
        model = f"open_clip:{args.model}@{weights}"
    else:
        weights = make_open_clip_checkpoint("", work, config_path=TINY)
        model = f"open_clip-config:{TINY}@{weights}"
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "CSR_CACHE_DIR": str(work / "cache")}
    print(f"{model.split('@')[0]} · arm {args.arm} · {args.photos} photos · global batch {args.batch} · "
          f"{args.epochs} epochs · {args.precision} · {'full' if args.unlock_image else 'LiT'}")
    for nproc in args.nproc:
        out = work / f"models-{nproc}"
        cmd = [sys.executable, "-m", "csr_core", "finetune", "--model", model, "--arm", args.arm, "--epochs",
               str(args.epochs), "--max-photos", str(args.photos), "--batch-size", str(args.batch // nproc),
               "--nproc", str(nproc), "--precision", args.precision, "--out", str(out), "--quiet"]
        if args.unlock_image:
            cmd.append("--no-lock-image")
        stop, peak = gpu_peak_sampler(args.gpu)
        child = run_child(f"nproc{nproc}", cmd, env=env, cwd=REPO, log_dir=work)
        stop.set()
        if child.rc != 0:
            print(f"nproc {nproc}: failed (rc {child.rc}): {child.stderr[-800:]}")
            continue
        logs = list(out.glob("*.work/logs/*/out.log"))
        steps = _STEP.findall(logs[0].read_text(errors="replace")) if logs else []
        step_s, rate = (float(steps[-1][0]), float(steps[-1][1])) if steps else (float("nan"), float("nan"))
        gpu = f", peak GPU memory {peak[0]:.0f} MiB" if args.gpu else ""
        print(f"nproc {nproc}: {len(steps)} steps, mean step {step_s * 1000:.0f} ms, {rate:.1f} samples/s; "
              f"command {child.wall_s:.1f} s wall, {child.cpu_s:.1f} s CPU, peak RSS {child.peak_rss_mb:.0f} MiB"
              f"{gpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
