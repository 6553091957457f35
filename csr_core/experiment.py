"""The fine-tuning experiment: every arm x text tower x seed, trained, evaluated, written to results/, reported.

`run_experiment` trains each (tower, arm, seed) with `csr_core.finetune` (heads only, cached tower features), then
evaluates it with `csr_core.evaluate.run_evaluation`:

- flickr8k-multi30k test photos (237), captions en/de/fr/cs (Multi30K task1, human): monolingual t2i + i2t,
  multilingual gallery, cross-lingual t2t between the aligned test captions, code-switched English queries;
- XTD10 text (cross-lingual t2t over en de fr es it ru zh ko tr pl; ja is not a translation and drops out),
  on a fixed seeded subset of `xtd_max` lines (CPU budget; 500 by default).

Rows carry `train_arm` and `seed`; the model is `csr-mini:<arm>/s<seed>` (MiniLM) or `csr-mini-m:<arm>/s<seed>`
(e5). Heads of `ship_seeds` are saved under `csr_core/heads/` with their test numbers and a reproduction subset in the
manifest. `design_report.build_report` + `design_render.write` (`csr_core.training`) turn a design's stored runs into
its report page (results/README.md for experiment 2, results/experiment-1.md for experiment 1).

There is no zero-shot arm: the towers were never aligned with each other (EfficientNet ImageNet features and a
sentence encoder live in unrelated spaces), so heads "trained on nothing" are random projections: R@K at chance.
EN-only is therefore the baseline every arm is compared with.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from csr_core import _io
from csr_core.errors import CSRError
from csr_core.finetune import TrainConfig, finetune, model_name, save_heads
from csr_core.training.arms import V1_ARMS as ALL_V1_ARMS
from csr_core.training.designs import (  # noqa: F401 - the designs are part of this module's interface
    DEFAULT_DESIGN, DESIGNS, TEST_LANGS, TEST_SETTINGS, TOWER_ARMS, XTD_LANGS, Design)
REPRO_IMAGES = 60  # photos of the fixed test subset whose numbers the heads manifest stores (fast reproduction)
REPRO_LANGS = ("en", "de")
TRAINING_LOG = "training_log.json"

LogFn = Callable[[str], None]




@dataclass
class ExperimentConfig:
    """The grid and the evaluation choices (recorded in the training log); `from_design` fills them."""

    towers: Sequence[str] = ("minilm", "e5")
    arms: Sequence[str] = ALL_V1_ARMS
    seeds: Sequence[int] = (0, 1, 2)
    ship_seeds: Sequence[int] = (0,)
    heads_dir: str | None = None
    results_dir: str | None = None
    cs_ps: Sequence[float] = (0.0, 0.5, 1.0)
    cs_query_seeds: Sequence[int] = (0,)
    xtd_max: int | None = 500
    train: dict = field(default_factory=dict)
    skip_existing: bool = True
    evaluate: bool = True
    test_langs: Sequence[str] = TEST_LANGS
    settings: Sequence[str] = TEST_SETTINGS
    cs_langs: Sequence[str] = ("de", "fr", "cs")
    xtd_seeds: Sequence[int] | None = None
    run_set: str = ""
    variants: dict[str, int] = field(default_factory=dict)  # per tower; empty: the trainer's default
    log_path: str | None = None  # the training log (default: <heads_dir>/training_log.json)
    translate_test: bool = False  # evaluate EN-only with word-by-word translated queries too
    top_layers: int = 0  # text-tower layers trained with the heads (0: heads only)
    cs_query_seed: int | None = None  # the code-switched queries' switching seed (None: the run's seed)

    @classmethod
    def from_design(cls, name: str = DEFAULT_DESIGN, **overrides: Any) -> "ExperimentConfig":
        if name not in DESIGNS:
            raise CSRError(f"unknown experiment design {name!r}; choose {', '.join(DESIGNS)}")
        d = DESIGNS[name]
        base: dict[str, Any] = dict(arms=d.arms, seeds=d.seeds, ship_seeds=d.ship_seeds, test_langs=d.test_langs,
                                    settings=d.settings, cs_langs=d.cs_langs, xtd_seeds=d.xtd_seeds, run_set=d.run_set,
                                    variants=dict(d.variants), train={"switching": d.switching, **dict(d.train)},
                                    translate_test=d.translate_test, top_layers=d.top_layers, xtd_max=500,
                                    cs_query_seeds=d.cs_query_seeds, cs_query_seed=d.cs_query_seed)
        return cls(**(base | {k: v for k, v in overrides.items() if v is not None}))

    def training_log_path(self) -> Path:
        """The training log: given, else `<results>/<run set>/training_log.json`, else the heads folder's."""
        if self.log_path:
            return Path(self.log_path)
        if self.run_set:
            from csr_core.paths import results_dir

            return (Path(self.results_dir) if self.results_dir else results_dir()) / self.run_set / TRAINING_LOG
        return _heads_dir(self) / TRAINING_LOG


def _store(results_dir):
    from csr_core.results import ResultsStore

    return ResultsStore(Path(results_dir) if results_dir else None)


def _heads_dir(cfg: ExperimentConfig) -> Path:
    from csr_core.encoders.csr_mini import HEADS_DIR

    return Path(cfg.heads_dir) if cfg.heads_dir else HEADS_DIR


def eval_configs(tower: str, arm: str, seed: int, cfg: ExperimentConfig):
    """The evaluations of one trained model: the test photos, and XTD10 text for the seeds `xtd_seeds` names."""
    from csr_core.evaluate import EvalConfig

    name = model_name(tower, arm, seed, cfg.top_layers)
    settings = tuple(s for s in cfg.settings if s != "cs-queries" or seed in cfg.cs_query_seeds)
    if arm == "en" and cfg.translate_test:
        settings += ("translate-test",)  # the translate-test baseline: EN-only with X queries translated into EN
    configs = [EvalConfig(model=name, dataset="flickr8k-multi30k", split="test", langs=tuple(cfg.test_langs),
                          settings=settings, seed=seed, cs_ps=tuple(cfg.cs_ps), cs_langs=tuple(cfg.cs_langs),
                          train_arm=arm, run_set=cfg.run_set, cs_query_seed=cfg.cs_query_seed)]
    if cfg.xtd_seeds is None or seed in cfg.xtd_seeds:
        configs.append(EvalConfig(model=name, dataset="xtd10", split="test", langs=XTD_LANGS, settings=("cross",),
                                  seed=seed, max_images=cfg.xtd_max, train_arm=arm, run_set=cfg.run_set))
    return tuple(configs)


def _existing_run(store, config, fingerprint: str) -> str | None:
    """A stored run with the same params and the same model fingerprint (heads content hash), if any."""
    from csr_core.results import build_manifest

    key = build_manifest(config.params())["params_key"]
    for manifest in store.intact_runs(key):  # intact runs only: a damaged one is evaluated again
        if manifest.get("fingerprints", {}).get("model") == fingerprint:
            return manifest["run_id"]
    return None


def _datasets():
    from csr_core.datasets import load_dataset

    return {
        "flickr8k-multi30k": load_dataset("flickr8k-multi30k", split="test"),
        "xtd10": load_dataset("xtd10", split="test", verify_images="none"),
    }


def repro_numbers(encoder, test_set, n_images: int = REPRO_IMAGES, langs: Sequence[str] = REPRO_LANGS) -> dict:
    """Monolingual R@1/5/10 (t2i, i2t) on a fixed seeded subset of the test photos: stored in the heads manifest so
    a test can reproduce shipped heads quickly with the real towers."""
    from csr_core.evaluate import EvalConfig, run_evaluation

    subset = test_set.subset(n_images, seed=0)
    cfg = EvalConfig(model=encoder.name, dataset=test_set.name, split="test", langs=tuple(langs),
                     settings=("monolingual",), n_resamples=10)
    out = run_evaluation(cfg, encoder=encoder, dataset=subset, write=False)
    rows = out.rows[out.rows["metric"] == "recall"]
    values = {f"{r.direction}/{r.query_lang if r.direction == 't2i' else r.doc_lang}/R@{int(r.k)}": round(float(r.value), 4)
              for r in rows.itertuples()}
    return {"subset": {"dataset": test_set.name, "split": "test", "n_images": n_images, "subset_seed": 0,
                       "langs": list(langs), "image_ids": subset.image_ids}, "values": values}


def headline_numbers(rows) -> dict:
    """Test-photo monolingual R@K per language and direction (what the README table shows), for the manifest."""
    sel = rows[(rows["setting"] == "monolingual") & (rows["metric"] == "recall")]
    return {f"{r.direction}/{r.query_lang if r.direction == 't2i' else r.doc_lang}/R@{int(r.k)}": round(float(r.value), 4)
            for r in sel.itertuples()}


def _update_log(path: Path, key: str, entry: dict) -> None:
    """Read-modify-write under a file lock (one experiment process per tower may run at once)."""
    from filelock import FileLock

    path.parent.mkdir(parents=True, exist_ok=True)
    import hashlib

    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"csr-training-log-{digest}.lock"
    with FileLock(str(lock_path)):
        data = _io.read_json_file(path, "training log") if path.is_file() else {}
        data[key] = entry
        _io.atomic_write_text(path, json.dumps(dict(sorted(data.items())), indent=1, sort_keys=True))


def _finished_entry(cfg: ExperimentConfig, key: str, store) -> dict | None:
    """The log entry of a (tower, arm, seed) whose every evaluation is in the store (resuming skips its training)."""
    path = cfg.training_log_path()
    if not path.is_file():
        return None
    entry = _io.read_json_file(path, "training log").get(key)
    if not entry or entry.get("run_set", "") != cfg.run_set:
        return None
    from csr_core.results import build_manifest

    tower, arm, seed = key.split("/")[0], entry["arm"], int(entry["seed"])  # key: tower/arm/sN[+topK]
    runs = entry.get("runs", {})
    for config in (eval_configs(tower, arm, seed, cfg) if cfg.evaluate else ()):
        # the stored run must be this evaluation (same params, intact), not an older one with other settings
        intact = store.find_runs(build_manifest(config.params())["params_key"])
        if runs.get(config.dataset) not in intact:
            return None
    return entry


def run_one(tower: str, arm: str, seed: int, cfg: ExperimentConfig, *, store=None, datasets=None,
            log: LogFn | None = None) -> dict:
    """Train one (tower, arm, seed), evaluate it, ship heads when `seed in ship_seeds`; returns its log entry."""
    from csr_core.embed_cache import EmbeddingCache
    from csr_core.evaluate import run_evaluation

    log = log or print
    store = store or _store(cfg.results_dir)
    key = f"{tower}/{arm}/s{seed}" + (f"+top{cfg.top_layers}" if cfg.top_layers else "")
    done = _finished_entry(cfg, key, store) if cfg.skip_existing else None
    if done is not None:
        log(f"{done['model']}: already trained and evaluated ({', '.join(done['runs'].values())}); skipped")
        return done
    t0 = time.perf_counter()
    tower_variants = {"variants": cfg.variants[tower]} if tower in cfg.variants else {}
    layers = {"train_top_layers": cfg.top_layers} if cfg.top_layers else {}
    train_cfg = TrainConfig(tower=tower, arm=arm, seed=seed, **(tower_variants | layers | cfg.train))
    outcome = finetune(train_cfg)
    train_s = time.perf_counter() - t0
    encoder = outcome.encoder
    entry: dict[str, Any] = {
        "model": encoder.name, "tower": tower, "arm": arm, "seed": seed, "best_step": outcome.result.best_step,
        "steps_run": outcome.result.steps_run, "val_mean_recall_en": round(outcome.result.best_val, 3),
        "temperature": round(outcome.result.heads.temperature, 5),
        "train_s": round(train_s, 1), "heads_fingerprint": encoder.fingerprint, "runs": {},
        "run_set": cfg.run_set, "switching": train_cfg.switching, "variants": train_cfg.variants,
        "cs_seed": train_cfg.cs_seed,
    }
    if cfg.evaluate:
        datasets = datasets or _datasets()
        for config in eval_configs(tower, arm, seed, cfg):
            t1 = time.perf_counter()
            existing = _existing_run(store, config, encoder.fingerprint) if cfg.skip_existing else None
            if existing:
                entry["runs"][config.dataset] = existing
                continue
            result = run_evaluation(config, encoder=encoder, dataset=datasets[config.dataset], store=store)
            entry["runs"][config.dataset] = result.run_id
            entry[f"eval_{config.dataset}_s"] = round(time.perf_counter() - t1, 1)
            if config.dataset == "flickr8k-multi30k":
                entry["test"] = headline_numbers(result.rows)
            # the heads' own embeddings are cheap to recompute from cached tower features: do not keep them
            EmbeddingCache().clear(encoder.fingerprint)
    for fact in ("bli_p_at_1", "bli_n"):  # an induced-lexicon arm: how good its dictionaries are (vs MUSE)
        if fact in outcome.result.info:
            entry[fact] = outcome.result.info[fact]
    if cfg.top_layers:
        EmbeddingCache().clear(encoder.text_tower.fingerprint)  # features of a one-off tower: do not keep them
        entry["top_layers"] = cfg.top_layers
    if seed in cfg.ship_seeds:
        extra = {"results_runs": entry["runs"], "test_numbers": entry.get("test", {})}
        if cfg.evaluate:
            extra["repro"] = repro_numbers(encoder, datasets["flickr8k-multi30k"])
            EmbeddingCache().clear(encoder.fingerprint)
        path = save_heads(outcome.result, _heads_dir(cfg), extra=extra)
        entry["heads_file"] = path.name
    entry["total_s"] = round(time.perf_counter() - t0, 1)
    _update_log(cfg.training_log_path(), key, entry)
    log(f"{encoder.name}: best step {entry['best_step']}, val {entry['val_mean_recall_en']:.2f}, "
        f"train {train_s:.1f} s, total {entry['total_s']:.1f} s")
    return entry


def run_experiment(cfg: ExperimentConfig, log: LogFn | None = None) -> list[dict]:
    """The whole grid, seed by seed (so a run cut short still has complete seeds for every tower and arm)."""
    log = log or print
    for arm in cfg.arms:
        from csr_core.finetune import parse_arm

        parse_arm(arm)
    if not cfg.towers or not cfg.seeds or not cfg.arms:
        raise CSRError("the experiment needs at least one tower, one seed and one arm")
    store = _store(cfg.results_dir)
    datasets = _datasets() if cfg.evaluate else None
    entries, failed = [], []
    for seed in cfg.seeds:
        for tower in cfg.towers:
            for arm in cfg.arms:
                try:
                    entries.append(run_one(tower, arm, seed, cfg, store=store, datasets=datasets, log=log))
                except CSRError as error:  # one broken cell must not stop a grid of hours; it is reported at the end
                    failed.append(f"{tower}/{arm}/s{seed}: {error}")
                    log(f"FAILED {failed[-1]}")
    if failed:
        raise CSRError(f"{len(failed)} of the grid's (tower, arm, seed) runs failed (the others are stored):\n"
                       + "\n".join(failed))
    return entries
