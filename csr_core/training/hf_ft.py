"""Fine-tune transformers CLIP / BLIP models on an arm's captions: LoRA adapters (peft) or full, with accelerate.

The same arms, photos and caption pools as csr-mini and open_clip_train (`open_clip_ft.arm_captions`). The loss is
CLIP's symmetric InfoNCE over the projected, L2-normalised features — for CLIP with its learned `logit_scale`, for
BLIP in its ITC space (`vision_proj`/`text_proj` of the [CLS] tokens, as `hf_backend.BlipEncoder` embeds) with
BLIP's initial temperature 0.07 fixed. Under several processes the features of every process are gathered *with*
their gradients before the loss (open_clip's `--gather-with-grad`), so N processes of batch B compute the loss of one
global batch of N·B — the same loss as one process on that batch.

Modes:
    lora   peft LoRA adapters on the attention query/value projections of the text encoder (and of the image
           encoder with `lock_image=False`); merged into the weights before saving, so the result is a plain model.
    full   every text-encoder parameter (and the image encoder's with `lock_image=False`) plus the projections.

Launch: one process in this one, or for `nproc > 1` `accelerate launch --multi_gpu --num_processes N -m
csr_core.training.hf_ft JOB.json` on GPUs (nccl) and `torchrun --nproc_per_node N` on CPUs (gloo; accelerate's own
CPU launcher needs MPI). Registration is one atomic folder rename after training ended
cleanly: `<out>/<name>/` holds the model (safetensors), tokenizer, image processor and `csr_training.json` (arm,
seed, config, per-step losses, training photo ids: `eval --model hf:<out>/<name>` reads them and the leakage guard
refuses those photos). A run killed midway leaves only its `.work` folder, never a registered model.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from csr_core import _io
from csr_core.errors import CSRError, ModelError
from csr_core.model_names import file_stem

FORMAT = "csr-hf-finetune/1"
MANIFEST = "csr_training.json"
MODES = ("lora", "full")
LogFn = Callable[[str], None]

# attention projections LoRA adapts, per model family (regexes over module names, as peft's target_modules takes)
_LORA_TARGETS = {
    "hf": {"text": r".*text_model\..*\.(q_proj|v_proj)", "image": r".*vision_model\..*\.(q_proj|v_proj)"},
    "blip": {"text": r".*text_encoder\..*\.attention\.self\.(query|value)", "image": r".*vision_model\..*\.qkv"},
}
# parameters `full` trains, per family (prefixes of parameter names)
_TEXT_PARAMS = {"hf": ("text_model.", "text_projection.", "logit_scale"), "blip": ("text_encoder.", "text_proj.")}
_IMAGE_PARAMS = {"hf": ("vision_model.", "visual_projection."), "blip": ("vision_model.", "vision_proj.")}
_BLIP_TEMPERATURE = 0.07


@dataclass
class HFTrainConfig:
    """One (model, arm, seed) transformers fine-tuning run."""

    model: str  # hf:REPO_OR_FOLDER (CLIPModel) or blip:REPO_OR_FOLDER (BlipForImageTextRetrieval)
    arm: str = "en"
    seed: int = 0
    dataset: str = "flickr8k-multi30k"
    mode: str = "lora"
    epochs: int = 5
    batch_size: int = 64  # per process; the global batch is batch_size * nproc
    lr: float | None = None  # None: 1e-4 for LoRA, 1e-5 for full fine-tuning
    weight_decay: float = 0.1
    warmup: int = 10
    lock_image: bool = True  # LiT: the image encoder stays frozen
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    precision: str = "no"  # accelerate's mixed_precision: no, fp16, bf16
    variants: int = 1
    max_photos: int | None = None
    nproc: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CSRError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.precision not in ("no", "fp16", "bf16"):
            raise CSRError(f"precision must be no, fp16 or bf16, got {self.precision!r}")
        for name in ("epochs", "batch_size", "nproc", "lora_r", "variants"):
            if int(getattr(self, name)) < 1:
                raise CSRError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr is None:
            self.lr = 1e-4 if self.mode == "lora" else 1e-5

    @property
    def kind(self) -> str:
        kind = self.model.split(":", 1)[0]
        if kind not in _LORA_TARGETS or ":" not in self.model:
            raise ModelError(f"{self.model!r}: the transformers trainer takes hf:<repo|folder> or blip:<repo|folder>")
        return kind

    @property
    def source(self) -> str:
        return self.model.split(":", 1)[1]

    @property
    def run_name(self) -> str:
        raw = Path(self.source).name if Path(self.source).expanduser().is_dir() else self.source
        return f"{self.kind}-{file_stem(raw)}-{self.mode}-{self.arm}-s{self.seed}"


@dataclass(frozen=True)
class HFFinetuneOutcome:
    model_name: str  # what `eval --model` takes
    folder: Path
    losses: list[float]
    manifest: dict[str, Any]


# ------------------------------------------------------------------------------------------------ the model side


def _load(config: HFTrainConfig):
    from csr_core.encoders.hf_backend import load_hf

    return load_hf(config.kind, config.source, device="cpu", local_files_only=Path(config.source).is_dir())


def prepare_model(encoder, config: HFTrainConfig):
    """Freeze what the mode does not train; wrap in LoRA adapters for `lora`. Returns (model, trainable names)."""
    model = encoder.model
    for p in model.parameters():
        p.requires_grad_(False)
    if config.mode == "lora":
        from peft import LoraConfig, get_peft_model

        targets = _LORA_TARGETS[config.kind]
        pattern = targets["text"] if config.lock_image else f"(?:{targets['text']})|(?:{targets['image']})"
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=pattern, bias="none")
        model = get_peft_model(model, lora)
    else:
        prefixes = _TEXT_PARAMS[config.kind] + (() if config.lock_image else _IMAGE_PARAMS[config.kind])
        for name, p in model.named_parameters():
            # BLIP's text encoder carries cross-attention layers its ITC embedding never runs: training them would
            # leave parameters without gradients (which DDP refuses)
            if name.startswith(prefixes) and ".crossattention." not in name:
                p.requires_grad_(True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ModelError(f"{config.model}: {config.mode} found no parameter to train (unexpected module names)")
    return model, trainable


def _contrastive_module(kind: str, model):
    """The model as one torch module whose forward returns (image features, text features, logit scale), both
    L2-normalised, with autograd -- so DDP (through accelerate) sees every forward and syncs the gradients."""
    import torch
    import torch.nn.functional as F

    from csr_core.encoders.hf_backend import _pooled

    class ContrastivePair(torch.nn.Module):
        def __init__(self, wrapped):
            super().__init__()
            self.model = wrapped

        def base(self):
            inner = self.model
            return inner.get_base_model() if hasattr(inner, "get_base_model") else inner  # under peft's wrapper

        def forward(self, pixel_values, input_ids, attention_mask):
            base = self.base()
            if kind == "hf":
                img = _pooled(base.get_image_features(pixel_values=pixel_values))
                txt = _pooled(base.get_text_features(input_ids=input_ids, attention_mask=attention_mask))
                scale = base.logit_scale.exp().clamp(max=100.0)
            else:
                img = base.vision_proj(base.vision_model(pixel_values=pixel_values)[0][:, 0, :])
                out = base.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
                txt = base.text_proj(out[0][:, 0, :])
                scale = torch.tensor(1.0 / _BLIP_TEMPERATURE, device=img.device)
            return F.normalize(img, dim=-1), F.normalize(txt, dim=-1), scale

    return ContrastivePair(model)


def clip_loss(img, txt, scale):
    """Symmetric InfoNCE over the global batch: features of every process gathered with their gradients.

    Every process computes the same global loss; the gather's backward sums the gradients of all processes for
    each process's own features, and DDP averages the parameter gradients, which together give exactly the gradient
    of the one global-batch loss (no rescaling)."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        from torch.distributed.nn.functional import all_gather

        img, txt = torch.cat(all_gather(img)), torch.cat(all_gather(txt))
    logits = scale * img @ txt.T
    labels = torch.arange(len(img), device=img.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


# ------------------------------------------------------------------------------------------------- the data side


class _Rows:
    """(image file, caption) rows as a torch dataset; images go through the encoder's own preprocessing."""

    def __init__(self, rows: list[tuple[str, str]], encoder):
        self.rows, self.encoder = rows, encoder

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        path, caption = self.rows[i]
        return self.encoder._prepare_image(Path(path)), caption


def _collate(encoder):
    import torch

    def collate(batch):
        images, captions = zip(*batch)
        tokens = encoder._tokenize(list(captions))
        return torch.stack(images), tokens["input_ids"], tokens["attention_mask"]

    return collate


# ------------------------------------------------------------------------------------------------------ training


def train_worker(config: HFTrainConfig, rows: list[tuple[str, str]], out_dir: Path) -> list[float]:
    """The training loop of one process (every process of a launched run); rank 0 saves to `out_dir`.

    The seed drives LoRA's initialisation and dropout through torch's global generator, so that generator is forked
    for the run and restored afterwards (a dashboard process serves other sessions); the row order has its own."""
    import torch

    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count()))):
        torch.manual_seed(config.seed)
        return _train(config, rows, out_dir)


def _train(config: HFTrainConfig, rows: list[tuple[str, str]], out_dir: Path) -> list[float]:
    import torch
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    accelerator = Accelerator(mixed_precision=config.precision, cpu=not torch.cuda.is_available())
    encoder = _load(config)
    model, _ = prepare_model(encoder, config)
    pair = _contrastive_module(config.kind, model)
    dataset = _Rows(rows, encoder)
    generator = torch.Generator().manual_seed(config.seed)
    loader: Any = torch.utils.data.DataLoader(dataset, batch_size=config.batch_size, shuffle=True, drop_last=True,  # type: ignore[arg-type]
                                         generator=generator, collate_fn=_collate(encoder))
    if len(loader) == 0:
        raise CSRError(f"{len(rows)} rows are fewer than one batch of {config.batch_size * config.nproc}")
    params = [p for p in pair.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=float(config.lr or 0.0), weight_decay=config.weight_decay)
    pair, optimizer, loader = accelerator.prepare(pair, optimizer, loader)
    steps = config.epochs * len(loader)
    schedule = get_cosine_schedule_with_warmup(optimizer, min(config.warmup, steps), steps)
    losses: list[float] = []
    pair.train()
    if config.lock_image:  # the frozen image encoder: no dropout, no BatchNorm updates
        accelerator.unwrap_model(pair).base().vision_model.eval()
    for _epoch in range(config.epochs):
        for pixel_values, input_ids, attention_mask in loader:
            with accelerator.autocast():
                img, txt, scale = pair(pixel_values, input_ids, attention_mask)
                loss = clip_loss(img, txt, scale)
            accelerator.backward(loss)
            value = float(loss.detach())
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(value)
            if accelerator.is_main_process:  # progress a user (or a test) can follow while it runs
                with open(out_dir.parent / "steps.log", "a", encoding="utf-8") as progress:
                    progress.write(f"step {len(losses)} loss {value:.6f}\n")
            if not math.isfinite(value):
                raise CSRError(f"loss became {value} at step {len(losses)}; nothing was registered")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(pair).model
        if config.mode == "lora":
            trained = trained.merge_and_unload()  # plain transformers weights: any CLIPModel loader reads them
        trained.save_pretrained(str(out_dir), safe_serialization=True)
        encoder.tokenizer.save_pretrained(str(out_dir))
        encoder.image_processor.save_pretrained(str(out_dir))
        _io.atomic_write_text(out_dir / "losses.json", json.dumps(losses))
    accelerator.wait_for_everyone()
    return losses


def finetune_hf(config: HFTrainConfig, out_dir: str | os.PathLike, *, data_root=None, log: LogFn | None = None,
                env: dict[str, str] | None = None) -> HFFinetuneOutcome:
    """Train one arm and register the model folder (module docstring)."""
    from csr_core.training.open_clip_ft import arm_captions

    say = log or (lambda message: None)
    config.kind  # noqa: B018 - fail fast on a name this trainer cannot take
    out = Path(out_dir).expanduser().resolve()
    work = out / f"{config.run_name}.work"
    if work.exists():
        shutil.rmtree(work)  # a previous, killed attempt
    (work / "model").mkdir(parents=True)
    data = arm_captions(config.dataset, config.arm, config.variants, config.max_photos, data_root=data_root)
    rows = [(str(path), text) for path, text in data.rows]
    _io.atomic_write_text(work / "job.json", json.dumps({"config": asdict(config), "rows": rows}))
    say(f"{len(rows)} captions of {len(data.image_ids)} photos ({config.arm}, {config.mode}) → {work}")
    started = time.time()
    command: list[str] = []
    if config.nproc > 1:
        command = launch_command(config, work / "job.json")
        done = subprocess.run(command, env={**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})},
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise CSRError(f"accelerate launch exited with {done.returncode}; nothing was registered.\n"
                           f"{(done.stderr or done.stdout)[-3000:]}")
        losses = json.loads((work / "model" / "losses.json").read_text(encoding="utf-8"))
    else:
        losses = train_worker(config, rows, work / "model")
    manifest = {
        "format": FORMAT, "base_model": config.model, "arm": config.arm, "seed": config.seed,
        "config": asdict(config), "nproc": config.nproc, "command": command, "losses": losses,
        "train_wall_s": round(time.time() - started, 2), "training_images": data.facts,
        "training_image_ids": data.image_ids, "captions": len(rows),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    target = out / config.run_name
    with _io.atomic_dir(target) as tmp:
        for item in (work / "model").iterdir():
            if item.name != "losses.json":
                shutil.move(str(item), tmp / item.name)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str), encoding="utf-8")
    shutil.rmtree(work)
    say(f"registered {target} ({len(losses)} steps, loss {losses[0]:.4f} → {losses[-1]:.4f})")
    return HFFinetuneOutcome(f"{config.kind}:{target}", target, losses, manifest)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The training manifest of a folder registered by `finetune_hf`; None for any other model folder."""
    path = Path(folder).expanduser() / MANIFEST
    if not path.is_file():
        return None
    manifest = _io.read_json_file(path, "unreadable training manifest", ModelError)
    if manifest.get("format") != FORMAT:
        raise ModelError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


def launch_command(config: HFTrainConfig, job: Path) -> list[str]:
    """`accelerate launch --multi_gpu` on GPUs; on CPUs torchrun, which accelerate launch itself wraps for GPUs but
    replaces by mpirun for CPUs (not installed here) -- the Accelerator reads torchrun's environment either way."""
    import torch

    worker = ["-m", "csr_core.training.hf_ft", str(job)]
    if torch.cuda.is_available():
        return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                str(config.nproc), "--num_machines", "1", "--mixed_precision", config.precision,
                "--dynamo_backend", "no", *worker]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(config.nproc),
            *worker]


def main(argv: list[str] | None = None) -> int:
    """`accelerate launch -m csr_core.training.hf_ft JOB.json`: one worker process of a multi-process run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    job_file = Path(argv[0])
    job = json.loads(job_file.read_text(encoding="utf-8"))
    config = HFTrainConfig(**job["config"])
    train_worker(config, [tuple(r) for r in job["rows"]], job_file.parent / "model")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
