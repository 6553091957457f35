"""transformers CLIP fine-tuning (`csr-lab finetune --model hf:… --mode lora|full`): step time, images/s, peak memory.

    python benchmarks/hf_finetune_bench.py                          # CPU: tiny CLIP, LoRA and full, 1 process
    python benchmarks/hf_finetune_bench.py --size b32 --photos 64 --batch 32 --nproc 1 2
    python benchmarks/hf_finetune_bench.py --gpu --size b32 --photos 663 --batch 128 --precision bf16 --nproc 1

`--size b32` is CLIP ViT-B/32's architecture (transformers' CLIPConfig defaults) with a seeded random init and the test
suite's tiny byte-level tokenizer: timing does not depend on the weights, and nothing is downloaded. Per mode it
prints the steps, the mean training time per step and images/s (from the registered manifest's train_wall_s, which
includes the model load), the wall time of the whole command and its peak RSS; with --gpu also the peak GPU memory
(nvidia-smi sampled every 0.2 s). Everything goes to a temp dir.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import REPO, gpu_peak_sampler, run_child  # noqa: E402

_BUILD = """
import sys, torch
sys.path.insert(0, sys.argv[1])
from testsupport import _tiny_clip_tokenizer, build_tiny_clip
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
folder = sys.argv[2]
if sys.argv[3] == "tiny":
    build_tiny_clip(folder)
else:
    tok, vocab = _tiny_clip_tokenizer()
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(text_config=dict(vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos,
                                      pad_token_id=eos), projection_dim=512)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        CLIPModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor().save_pretrained(folder)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=["tiny", "b32"], default="tiny")
    parser.add_argument("--modes", nargs="+", default=["lora", "full"])
    parser.add_argument("--arm", default="mlcs-de-fr-cs")
    parser.add_argument("--photos", type=int, default=32, help="training photos (5 captions each)")
    parser.add_argument("--batch", type=int, default=16, help="global batch (split over processes)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--nproc", type=int, nargs="+", default=[1])
    parser.add_argument("--precision", default="no", help="no, fp16, bf16")
    parser.add_argument("--gpu", action="store_true", help="also sample GPU memory with nvidia-smi")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="csr-bench-hf-"))
    model_dir = work / f"clip-{args.size}"
    model_dir.mkdir()
    subprocess.run([sys.executable, "-c", _BUILD, str(REPO / "tests"), str(model_dir), args.size], check=True,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "CSR_CACHE_DIR": str(work / "cache")}
    print(f"hf CLIP {args.size} · arm {args.arm} · {args.photos} photos · global batch {args.batch} · "
          f"{args.epochs} epochs · precision {args.precision} · LiT")
    for mode in args.modes:
        for nproc in args.nproc:
            out = work / f"models-{mode}-{nproc}"
            cmd = [sys.executable, "-m", "csr_core", "finetune", "--model", f"hf:{model_dir}", "--mode", mode,
                   "--arm", args.arm, "--epochs", str(args.epochs), "--max-photos", str(args.photos),
                   "--batch-size", str(args.batch // nproc), "--nproc", str(nproc), "--out", str(out), "--quiet",
                   "--precision", {"no": "fp32", "fp16": "amp", "bf16": "amp_bf16"}[args.precision]]
            stop, peak = gpu_peak_sampler(args.gpu)
            child = run_child(f"{mode}-{nproc}", cmd, env=env, cwd=REPO, log_dir=work)
            stop.set()
            if child.rc != 0:
                print(f"{mode} nproc {nproc}: failed (rc {child.rc}): {child.stderr[-800:]}")
                continue
            manifest = json.loads(next(out.glob("*/csr_training.json")).read_text())
            steps = len(manifest["losses"])
            step_s = manifest["train_wall_s"] / max(steps, 1)
            gpu = f", peak GPU memory {peak[0]:.0f} MiB" if args.gpu else ""
            print(f"{mode:4s} nproc {nproc}: {steps} steps, {step_s * 1000:.0f} ms/step incl. load, "
                  f"{args.batch / step_s:.1f} images/s; command {child.wall_s:.1f} s wall, {child.cpu_s:.1f} s CPU, "
                  f"peak RSS {child.peak_rss_mb:.0f} MiB{gpu}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
