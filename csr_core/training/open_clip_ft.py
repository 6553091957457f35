"""Fine-tune open_clip models on an arm's captions with the field's own trainer, `open_clip_train`.

One call trains one (model, arm, seed): the arm's caption pools for the flickr8k-multi30k training photos
(`csr_core.training.arms`, the same pools csr-mini trains on) are written as the tab-separated CSV open_clip_train
reads (`filepath`, `title`; one row per caption variant), open_clip_train runs in a child process — one process, or
`torchrun --nproc_per_node N` (DDP: gloo on CPU, nccl on GPUs) — and its final checkpoint is registered:

    <out>/<name>.safetensors   weights (module. prefixes stripped) + this module's manifest in the file's metadata
    <out>/<name>.json          the same manifest, human-readable

The manifest (format `FORMAT`) records arm, seed, the base model, every open_clip_train argument, the per-step
losses from its log, the training photos (ids and their hash: the leakage guard refuses them at evaluation) and the
data fingerprint. Registration is one atomic file write after the trainer exited cleanly: a run killed midway
leaves no registered checkpoint (only open_clip_train's latest epoch checkpoint in its log folder; a rerun starts
afresh). After registration that epoch checkpoint (weights + optimizer state) is deleted: the registered file has
the weights.

The result is evaluated like any local checkpoint: `eval --model open_clip:ARCH@<out>/<name>.safetensors`
(`open_clip-config:/x.json@...` for a local config).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from csr_core import _io
from csr_core.errors import CSRError, ModelError
from csr_core.model_names import file_stem

FORMAT = "csr-open-clip-finetune/1"
_LOSS = re.compile(r"Contrastive_loss: ([0-9.eE+-]+) \(")
LogFn = Callable[[str], None]


@dataclass
class OpenClipTrainConfig:
    """What defines one open_clip fine-tuning run; the open_clip_train flags follow from it (`trainer_args`)."""

    model: str  # an open_clip model name as `eval` takes it: open_clip:ARCH/TAG, open_clip:ARCH@ckpt, open_clip-config:x.json[@ckpt]
    arm: str = "en"
    seed: int = 0
    dataset: str = "flickr8k-multi30k"
    epochs: int = 5
    batch_size: int = 64  # per process; the global batch is batch_size * nproc
    lr: float = 1e-5
    weight_decay: float = 0.1
    warmup: int = 10
    lock_image: bool = True  # LiT: the image tower stays frozen (with its BatchNorm statistics)
    text_unlocked_layers: int = -1  # -1 trains the whole text tower; N >= 0 locks it except its top N layers
    precision: str = "fp32"  # amp / amp_bf16 on GPUs
    variants: int = 1  # code-switched variants per English caption (the arm's k)
    max_photos: int | None = None  # quick mode: a fixed subset of the training photos
    nproc: int = 1  # >1: torchrun --nproc_per_node
    workers: int = 0  # dataloader workers per process
    image_size_jitter: bool = False  # False: no random crop (scale = ratio = 1), so runs are comparable step by step
    extra_args: list[str] = field(default_factory=list)  # passed to open_clip_train unchanged

    def params(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_name(self) -> str:
        raw = self.model.split(":", 1)[-1].split("@", 1)[0]
        raw = Path(raw).stem if raw.endswith(".json") else raw  # a local config: its architecture name
        return f"{file_stem(raw)}-{self.arm}-s{self.seed}"


@dataclass(frozen=True)
class OpenClipFinetuneOutcome:
    model_name: str  # what `eval --model` takes
    checkpoint: Path
    losses: list[float]
    manifest: dict[str, Any]


def _base_model(model: str) -> tuple[list[str], list[str], str]:
    """(open_clip_train --model/--pretrained flags, launcher flags, the architecture part of the result's name)."""
    from csr_core.encoders.registry import parse_model_name

    spec = parse_model_name(model)
    if spec.backend != "open_clip":
        raise ModelError(f"{model!r} is not an open_clip model: open_clip_train trains open_clip models only (use "
                         "`finetune --tower` for csr-mini, and hf:/blip: models through their own trainers)")
    if spec.kind == "config":
        assert spec.path is not None
        path = str(Path(spec.path).expanduser().resolve())
        flags = ["--model", Path(path).stem] + (["--pretrained", str(spec.checkpoint)] if spec.checkpoint else [])
        return flags, ["--register-config", path], f"open_clip-config:{path}"
    if spec.kind in ("tag", "random", "checkpoint"):
        pretrained = spec.pretrained if spec.kind == "tag" else spec.checkpoint
        return (["--model", str(spec.arch)] + (["--pretrained", str(pretrained)] if pretrained else []), [],
                f"open_clip:{spec.arch}")
    raise ModelError(f"{model!r}: open_clip_train takes an architecture and pretrained weights; {spec.kind} models "
                     "(hf-hub:, local-dir:) are not supported here — download the checkpoint and name it ARCH@file")


@dataclass(frozen=True)
class ArmCaptions:
    """One arm's training rows: (photo file, caption) per caption variant, and the data facts a manifest records."""

    rows: list[tuple[Path, str]]
    image_ids: list[str]
    facts: dict[str, Any]  # training_images (checked disjoint from test), the dataset's split hashes


def arm_captions(dataset: str, arm: str, variants: int, max_photos: int | None, *, data_root=None) -> ArmCaptions:
    """The arm's caption pools for the training photos (the pools csr-mini trains on), one row per variant; shared by
    every trainer (open_clip_train's CSV, the transformers trainer) so all of them see the same data for an arm."""
    from csr_core.finetune import _load_split, _subset_rows, arm_pools
    from csr_core.training.data import check_no_test_photos

    train = _load_split("train", dataset, data_root)
    if train.image_paths is None:
        raise CSRError(f"{dataset}: the training photos are not here; fine-tuning a full model needs them")
    chosen = _subset_rows(len(train), max_photos, 0)
    pools = arm_pools(arm, train, variants)
    ids = [train.image_ids[i] for i in chosen]
    facts = check_no_test_photos(ids, dataset, data_root)
    rows = [(Path(train.image_paths[i]).resolve(), " ".join(str(caption).split())) for i in chosen for caption in pools[i]]
    return ArmCaptions(rows, ids, facts)


def write_training_csv(config: OpenClipTrainConfig, path: Path, *, data_root=None) -> dict[str, Any]:
    """The arm's caption pools as open_clip_train's CSV (one row per caption variant); returns the data facts."""
    data = arm_captions(config.dataset, config.arm, config.variants, config.max_photos, data_root=data_root)
    # one line per row, no tabs (the CSV is tab-separated): arm_captions already collapsed all whitespace
    body = "filepath\ttitle\n" + "".join(f"{image}\t{text}\n" for image, text in data.rows)
    _io.atomic_write_text(path, body)
    return {"training_images": data.facts, "training_image_ids": data.image_ids, "captions": len(data.rows),
            "data_sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()}


def trainer_args(config: OpenClipTrainConfig, csv: Path, logs: Path) -> tuple[list[str], list[str]]:
    """(launcher flags, open_clip_train flags) for this config."""
    model_flags, launcher, _ = _base_model(config.model)
    args = model_flags + [
        "--train-data", str(csv), "--dataset-type", "csv", "--csv-separator", "\t", "--csv-img-key", "filepath",
        "--csv-caption-key", "title", "--epochs", str(config.epochs), "--batch-size", str(config.batch_size),
        "--lr", str(config.lr), "--wd", str(config.weight_decay), "--warmup", str(config.warmup),
        "--precision", config.precision, "--workers", str(config.workers), "--seed", str(config.seed),
        "--logs", str(logs), "--name", config.run_name, "--save-frequency", "1", "--log-every-n-steps", "1",
        "--report-to", "", "--gather-with-grad", "--delete-previous-checkpoint",
    ]
    if not config.image_size_jitter:
        args += ["--aug-cfg", "scale=(1.0, 1.0)", "ratio=(1.0, 1.0)"]
    if config.lock_image:
        args += ["--lock-image", "--lock-image-freeze-bn-stats"]
    if config.text_unlocked_layers >= 0:
        args += ["--lock-text", "--lock-text-unlocked-layers", str(config.text_unlocked_layers)]
    return launcher, args + list(config.extra_args)


def launch_command(config: OpenClipTrainConfig, launcher: list[str], args: list[str]) -> list[str]:
    module = ["-m", "csr_core.training.open_clip_launch", *launcher, "--", *args]
    if config.nproc > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(config.nproc), *module]
    return [sys.executable, *module]


def read_losses(log_file: Path) -> list[float]:
    """Per-step contrastive loss from open_clip_train's out.log (rank 0 logs every step with --log-every-n-steps 1)."""
    if not log_file.is_file():
        return []
    return [float(m.group(1)) for m in _LOSS.finditer(log_file.read_text(encoding="utf-8", errors="replace"))]


def register_checkpoint(trainer_checkpoint: Path, target: Path, manifest: dict[str, Any]) -> Path:
    """open_clip_train's checkpoint → safetensors with the manifest in its metadata, in one atomic write."""
    import torch
    from safetensors.torch import save_file

    state = torch.load(trainer_checkpoint, map_location="cpu", weights_only=True)
    weights = state.get("state_dict", state)
    tensors = {(k[len("module."):] if k.startswith("module.") else k): v.detach().contiguous()
               for k, v in weights.items()}
    metadata = {"format": FORMAT, "manifest": json.dumps(manifest, sort_keys=True, default=str)}
    _io.atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
    _io.atomic_write_text(target.with_suffix(".json"), json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return target


def read_manifest(checkpoint: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest a checkpoint registered by `finetune_open_clip` carries; None for any other checkpoint."""
    path = Path(checkpoint)
    if path.suffix != ".safetensors" or not path.is_file():
        return None
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:  # noqa: BLE001 - not ours to judge: the loader reports unreadable weights
        return None
    if metadata.get("format") != FORMAT:
        return None
    if "manifest" not in metadata:
        raise ModelError(f"{path}: registered as {FORMAT} but its metadata has no manifest")
    return _io.loads_json(metadata["manifest"], f"{path}: {FORMAT} metadata 'manifest'", ModelError)


def finetune_open_clip(config: OpenClipTrainConfig, out_dir: str | os.PathLike, *, data_root=None,
                       log: LogFn | None = None, env: dict[str, str] | None = None) -> OpenClipFinetuneOutcome:
    """Train one arm through open_clip_train and register its final checkpoint (module docstring)."""
    _, _, arch_name = _base_model(config.model)  # fail fast on a model open_clip_train cannot take
    out = Path(out_dir).expanduser().resolve()
    work = out / f"{config.run_name}.work"
    if work.exists():
        shutil.rmtree(work)  # a previous, killed attempt: open_clip_train refuses to reuse a log folder
    work.mkdir(parents=True)
    say = log or (lambda message: None)
    facts = write_training_csv(config, work / "train.csv", data_root=data_root)
    say(f"{facts['captions']} captions of {len(facts['training_image_ids'])} photos ({config.arm}) → {work}/train.csv")
    launcher, args = trainer_args(config, work / "train.csv", work / "logs")
    command = launch_command(config, launcher, args)
    started = time.time()
    child_env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **(env or {})}
    done = subprocess.run(command, env=child_env, capture_output=True, text=True)
    run_dir = work / "logs" / config.run_name
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-3000:]
        raise CSRError(f"open_clip_train exited with {done.returncode}; nothing was registered. Its log: "
                       f"{run_dir / 'out.log'}\n{tail}")
    final = run_dir / "checkpoints" / f"epoch_{config.epochs}.pt"
    if not final.is_file():
        raise CSRError(f"open_clip_train finished without {final}; nothing was registered")
    losses = read_losses(run_dir / "out.log")
    target = out / f"{config.run_name}.safetensors"
    manifest = {
        "format": FORMAT, "base_model": config.model, "arm": config.arm, "seed": config.seed,
        "config": config.params(), "open_clip_train_args": args, "command": command, "nproc": config.nproc,
        "losses": losses, "train_wall_s": round(time.time() - started, 2), **facts,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    register_checkpoint(final, target, manifest)
    final.unlink()  # the registered file holds its weights; the optimizer state is not kept (resume: rerun)
    say(f"registered {target} ({len(losses)} steps, loss {losses[0]:.4f} → {losses[-1]:.4f})" if losses else
        f"registered {target}")
    return OpenClipFinetuneOutcome(f"{arch_name}@{target}", target, losses, manifest)
