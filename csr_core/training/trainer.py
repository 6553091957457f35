"""The contrastive trainer: symmetric InfoNCE with a learnable temperature, LiT-style (image tower frozen).

Per step: a batch of B distinct training photos (an epoch is a seeded permutation; the last partial batch of an
epoch is dropped so every batch has B photos), for each photo one caption drawn uniformly from its pool (under dynamic
switching, from the pool of the epoch's code-switched variant: epoch e uses variant e mod k). The photo
order and the caption uniforms come from private generators seeded by the training seed alone, so every arm sees the
same photos in the same batches with the same draws: arms differ only in what their pools hold.

Trainable: the projection heads (default, on cached tower features: seconds on a CPU), or also the top N layers of a
text tower that has `tokenize`, `forward_features` and `set_trainable_top_layers` (MiniLM here; the same code runs a
transformers or open_clip text tower on a GPU). Dropout inside the tower stays off (eval mode) so a seed fully
determines the result.

Early stopping: every `eval_every` steps, mean recall (t2i + i2t, R@1/5/10) on the validation photos with their
English captions only -- model selection never sees target-language text. The best state is restored at the end.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from csr_core.encoders.csr_mini import ProjectionHeads
from csr_core.checks import check_seed
from csr_core.errors import CSRError
from csr_core.training.data import TrainData

#: Default number of code-switched variants per English caption, per text tower (CPU budget: every variant is
#: ~3300 more captions through the tower per arm; k=2 was measured as an ablation, see results/README.md).
DEFAULT_VARIANTS = {"minilm": 1, "e5": 1}
TOWERS = ("minilm", "e5")
SWITCHING = ("dynamic", "static")

LogFn = Callable[[str], None]


@dataclass
class TrainConfig:
    """Everything that defines one training run (recorded in the heads manifest)."""

    tower: str = "minilm"
    arm: str = "en"
    seed: int = 0
    max_steps: int = 1500
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 50
    heads: str = "linear"
    out_dim: int = 128
    hidden_dim: int | None = None
    temperature: float = 0.07
    learn_temperature: bool = True
    max_logit_scale: float = 100.0
    variants: int | None = None
    #: dynamic: epoch e trains on switched variant e mod `variants` (re-switched every epoch up to that bank);
    #: static: every variant sits in one pool (the first experiment)
    switching: str = "dynamic"
    #: seed of the code-switching draws (variant v uses CodeSwitcher seed 1000 * cs_seed + v); None: the run's seed
    cs_seed: int | None = None
    feature_dropout: float = 0.5
    eval_every: int = 25
    patience: int = 8
    min_steps: int = 100
    train_top_layers: int = 0
    tower_lr: float = 3e-5
    dataset: str = "flickr8k-multi30k"
    max_photos: int | None = None
    max_val_photos: int | None = None
    save_dtype: str = "float16"

    def __post_init__(self) -> None:
        if self.tower not in TOWERS:
            raise CSRError(f"unknown text tower {self.tower!r}; choose {' or '.join(TOWERS)}")
        if self.variants is None:
            self.variants = DEFAULT_VARIANTS[self.tower]
        if self.cs_seed is None:
            self.cs_seed = int(self.seed)
        if self.switching not in SWITCHING:
            raise CSRError(f"switching must be {' or '.join(SWITCHING)}, got {self.switching!r}")
        self.seed = check_seed(self.seed)
        self.cs_seed = check_seed(self.cs_seed, "cs_seed")
        for name in ("lr", "tower_lr", "weight_decay", "max_logit_scale"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "weight_decay"):
                raise CSRError(f"{name} must be a finite number > 0{' (or 0)' if name == 'weight_decay' else ''}, "
                               f"got {getattr(self, name)!r}")
        for name in ("max_steps", "batch_size", "out_dim", "eval_every", "variants"):
            if int(getattr(self, name)) < 1:
                raise CSRError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.heads not in ("linear", "mlp"):
            raise CSRError(f"heads must be linear or mlp, got {self.heads!r}")
        if not 0.0 < self.temperature < 1.0:
            raise CSRError(f"initial temperature must be in (0, 1), got {self.temperature}")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise CSRError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")
        if self.train_top_layers < 0:
            raise CSRError(f"train_top_layers must be >= 0, got {self.train_top_layers}")
        if self.save_dtype not in ("float16", "float32"):
            raise CSRError(f"save_dtype must be float16 or float32, got {self.save_dtype!r}")

    def params(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    """Trained heads (best validation state), the trained tower layers if any, and the training history."""

    heads: ProjectionHeads
    config: TrainConfig
    best_step: int
    best_val: float
    steps_run: int
    history: list[dict[str, float]]
    wall_s: float
    tower_state: dict[str, torch.Tensor] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def losses(self) -> list[float]:
        return [h["loss"] for h in self.history if "loss" in h]


@contextlib.contextmanager
def _deterministic():
    """Deterministic kernels while training (cheap on CPU); restores the caller's setting."""
    before = torch.are_deterministic_algorithms_enabled()
    warn_before = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_before)


def clip_loss(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch whose i-th image and i-th caption are the positive pair."""
    logits = scale * img @ txt.t()
    target = torch.arange(len(img), device=img.device)
    return 0.5 * (nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.t(), target))


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _val_score(heads: ProjectionHeads, data: TrainData, text_features: np.ndarray) -> dict[str, float]:
    """Mean recall (t2i + i2t, R@1/5/10) on the validation photos with English captions."""
    from csr_core.metrics import first_hit_ranks, recall_at_k

    with torch.inference_mode():
        img = nn.functional.normalize(heads.project_images(torch.from_numpy(data.val.image_features)), dim=-1).numpy()
        txt = nn.functional.normalize(heads.project_texts(torch.from_numpy(text_features)), dim=-1).numpy()
    ci = data.val.caption_image
    t2i = first_hit_ranks(txt, img, ci, np.arange(len(img)))
    q = np.unique(ci)
    i2t = first_hit_ranks(img[q], txt, q, ci)
    r_t2i, r_i2t = recall_at_k(t2i, (1, 5, 10)), recall_at_k(i2t, (1, 5, 10))
    mean = float(np.mean(list(r_t2i.values()) + list(r_i2t.values())))
    return {"val_mean_recall": mean, "val_t2i_r10": r_t2i[10], "val_i2t_r10": r_i2t[10]}


class _TowerText:
    """Text features with autograd through the trainable top layers of a tower (the rest frozen, eval mode)."""

    def __init__(self, tower, n_layers: int):
        for attr in ("tokenize", "forward_features", "set_trainable_top_layers"):
            if not hasattr(tower, attr):
                raise CSRError(f"text tower {getattr(tower, 'name', tower)!r} cannot be fine-tuned (no {attr}())")
        self.tower = tower
        self.params = tower.set_trainable_top_layers(n_layers)
        self.names = {id(p): n for n, p in tower.model.named_parameters()}
        tower.model.eval()  # no dropout: a seed determines the run

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        return self.tower.forward_features(self.tower.tokenize(list(texts))).float()

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for lo in range(0, len(texts), batch_size):
                out.append(self.features(texts[lo : lo + batch_size]).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.tower.dim), np.float32)

    def state(self) -> dict[str, torch.Tensor]:
        return {self.names[id(p)]: p.detach().to("cpu").clone() for p in self.params}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        own = dict(self.tower.model.named_parameters())
        with torch.no_grad():
            for name, value in state.items():
                own[name].copy_(value)


def train(config: TrainConfig, data: TrainData, text_tower=None, log: LogFn | None = None,
          trace: list | None = None, on_step: Callable[[dict], None] | None = None) -> TrainResult:
    """Train heads (and, with `config.train_top_layers`, the top layers of `text_tower`) on `data`.

    `on_step`, when given, receives each step's record (step, loss, temperature; val_mean_recall on eval steps) as
    it is made: live progress for the dashboard; an exception it raises (a cancel) stops training at that step.

    `trace`, when given, receives one `(photo_rows, uniforms, caption_rows)` tuple per step: what the step trained
    on (tests use it to prove arms share photos, batches and draws).
    """
    log = log or (lambda message: None)
    if config.train_top_layers and text_tower is None:
        raise CSRError("train_top_layers > 0 needs the text tower object to fine-tune")
    n_photos = len(data.image_ids)
    batch = min(config.batch_size, n_photos)
    if batch < 2:
        raise CSRError(f"contrastive training needs at least 2 photos per batch, have {n_photos} photos")
    device = "cpu"
    tower_text = _TowerText(text_tower, config.train_top_layers) if config.train_top_layers else None
    if tower_text is not None:
        device = str(getattr(text_tower, "device", "cpu"))
    text_dim = data.text_features.shape[1] if data.text_features is not None else int(text_tower.dim)
    heads = ProjectionHeads(
        data.image_features.shape[1], text_dim, config.out_dim, config.heads, config.hidden_dim, seed=config.seed,
        logit_scale_init=math.log(1.0 / config.temperature),
    ).to(device)
    heads.logit_scale.requires_grad_(config.learn_temperature)
    decay = [p for n, p in heads.named_parameters() if n != "logit_scale" and p.ndim > 1]
    no_decay = [p for n, p in heads.named_parameters() if n != "logit_scale" and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay, "lr": config.lr},
              {"params": no_decay, "weight_decay": 0.0, "lr": config.lr}]
    if config.learn_temperature:
        groups.append({"params": [heads.logit_scale], "weight_decay": 0.0, "lr": config.lr})
    if tower_text is not None:
        groups.append({"params": tower_text.params, "weight_decay": 0.01, "lr": config.tower_lr})
    for g in groups:
        g["base_lr"] = g["lr"]
    optimizer = torch.optim.AdamW(groups)

    gen_photos = torch.Generator().manual_seed(int(config.seed))
    gen_captions = torch.Generator().manual_seed(int(config.seed) + 7919)
    gen_dropout = torch.Generator().manual_seed(int(config.seed) + 104729)
    image_features = torch.from_numpy(np.ascontiguousarray(data.image_features, dtype=np.float32))
    text_features = (torch.from_numpy(np.ascontiguousarray(data.text_features, dtype=np.float32))
                     if data.text_features is not None else None)
    max_scale = math.log(config.max_logit_scale)

    def val_text_features() -> np.ndarray:
        if tower_text is None:
            assert data.val.text_features is not None
            return data.val.text_features
        return tower_text.encode(data.val.texts)

    def snapshot() -> tuple[dict, dict | None]:
        return copy.deepcopy(heads.state_dict()), (tower_text.state() if tower_text is not None else None)

    def dropout(x: torch.Tensor) -> torch.Tensor:
        if config.feature_dropout <= 0:
            return x
        keep = torch.bernoulli(torch.full(x.shape, 1.0 - config.feature_dropout), generator=gen_dropout)
        return x * keep.to(x.device) / (1.0 - config.feature_dropout)

    history: list[dict[str, float]] = []
    best = (-1.0, 0, *snapshot())
    bad_evals = 0
    order: list[int] = []
    epoch = -1
    start = time.perf_counter()
    step = 0
    with _deterministic():
        heads.train()
        for step in range(1, config.max_steps + 1):
            if len(order) < batch:
                perm = torch.randperm(n_photos, generator=gen_photos).tolist()
                order = perm[: (n_photos // batch) * batch]
                epoch += 1
            rows = np.asarray(order[:batch], dtype=np.int64)
            del order[:batch]
            uniforms = torch.rand(batch, generator=gen_captions, dtype=torch.float64).numpy()
            caption_rows = data.pools.draw(rows, uniforms, epoch)
            if trace is not None:
                trace.append((rows.copy(), uniforms.copy(), caption_rows.copy()))
            factor = _lr_factor(step - 1, config.warmup_steps, config.max_steps)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor  # type: ignore[operator]  # torch types param groups as dict[str, object]
            img_x = dropout(image_features[torch.from_numpy(rows)]).to(device)
            if tower_text is None:
                assert text_features is not None  # frozen tower: features were precomputed
                txt_x = dropout(text_features[torch.from_numpy(caption_rows)])
            else:
                txt_x = tower_text.features([data.pools.texts[j] for j in caption_rows])
            img, txt, scale = heads(img_x, txt_x)
            loss = clip_loss(img, txt, scale)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                heads.logit_scale.clamp_(0.0, max_scale)
            record: dict[str, float] = {"step": step, "loss": float(loss.detach()),
                                        "temperature": heads.temperature}
            if step % config.eval_every == 0 or step == config.max_steps:
                heads.eval()
                record.update(_val_score(heads, data, val_text_features()))
                heads.train()
                if record["val_mean_recall"] > best[0]:
                    best = (record["val_mean_recall"], step, *snapshot())
                    bad_evals = 0
                else:
                    bad_evals += 1
                log(f"step {step}: loss {record['loss']:.3f}, val mean recall {record['val_mean_recall']:.2f}, "
                    f"T {record['temperature']:.4f}")
            history.append(record)
            if on_step is not None:
                on_step(dict(record))
            if bad_evals >= config.patience and step >= config.min_steps:
                break
    best_val, best_step, head_state, tower_state = best
    heads.load_state_dict(head_state)
    heads.eval()
    if tower_text is not None and tower_state is not None:
        tower_text.load(tower_state)
    if config.save_dtype == "float16":
        _round_to_half(heads)  # what is saved is what was evaluated
    return TrainResult(heads=heads.to("cpu"), config=config, best_step=best_step, best_val=best_val, steps_run=step,
                       history=history, wall_s=time.perf_counter() - start, tower_state=tower_state)


def _round_to_half(module: nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())


def tensor_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 over sorted names and float32 bytes (identity of trained tower layers)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
