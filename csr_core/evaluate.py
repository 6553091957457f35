"""The paper's retrieval settings transposed to dual image-text encoders, as one call that writes tidy rows.

Settings (see ../shared/DESIGN.md): `monolingual` (captions of X <-> images), `cross` (caption in X -> its parallel
caption in Y through the text tower), `multilingual` (one gallery of captions in every language; language bias of
top-1 hits), `cs-queries` (English queries code-switched into X at several p: a robustness curve), `translate-test`
(captions of X translated word by word into English, then retrieved as English).

Everything is computed in memory and written with one atomic `ResultsStore.write_run` at the end, so a cancelled or
killed evaluation never leaves partial rows; embeddings go through the on-disk cache, so a rerun only pays for what
was not finished.
"""

from __future__ import annotations

import math
import threading
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from csr_core.checks import check_seed, check_unique
from csr_core.errors import CancelledError, DataError
from csr_core.results import with_query_columns
from csr_core.settings import check_settings, get_setting
DEFAULT_KS: tuple[int, ...] = (1, 5, 10)
DEFAULT_CS_PS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_CS_MODES: tuple[str, ...] = ("bl", "ml")

# progress(stage, done, total): stage is a short human label ("encode images", "monolingual de", ...).
EvalProgress = Callable[[str, int, int], None]


@dataclass
class EvalConfig:
    """Everything that defines an evaluation; `params()` is what the manifest records and `--skip-existing` keys on."""

    model: str
    dataset: str
    split: str = "test"
    langs: Sequence[str] = ("en", "de", "fr", "cs")
    settings: Sequence[str] = ("monolingual",)
    ks: Sequence[int] = DEFAULT_KS
    seed: int = 0
    cs_modes: Sequence[str] = DEFAULT_CS_MODES
    cs_ps: Sequence[float] = DEFAULT_CS_PS
    cs_langs: Sequence[str] | None = None
    max_images: int | None = None
    train_arm: str = ""
    allow_leakage: bool = False
    n_resamples: int = 1000
    dataset_options: dict = field(default_factory=dict)
    #: the run set this run belongs to ("" for a user's own runs; the experiment writes its design's name)
    run_set: str = ""
    #: seed of the code-switched queries' switching (None: `seed`); fixing it gives every model the same queries
    cs_query_seed: int | None = None

    def __post_init__(self) -> None:
        self.langs = check_unique(self.langs, "langs")
        self.settings = check_settings(self.settings)
        self.ks = check_unique((int(k) for k in self.ks), "K")
        self.cs_modes = check_unique(self.cs_modes, "cs modes")
        self.cs_ps = check_unique((float(p) for p in self.cs_ps), "cs probabilities")
        self.cs_langs = check_unique(self.cs_langs, "cs langs") if self.cs_langs else None
        self.seed = check_seed(self.seed)
        if self.cs_query_seed is not None:
            self.cs_query_seed = check_seed(self.cs_query_seed, "cs query seed")
        if isinstance(self.n_resamples, bool) or int(self.n_resamples) < 1:
            raise DataError(f"n_resamples must be a positive number of bootstrap resamples, got {self.n_resamples}")
        if not self.train_arm:
            # a csr-mini name says its arm (`csr-mini-m:blcs-de` -> blcs-de); other models have none unless given
            from csr_core.model_names import CsrMiniName

            name = CsrMiniName.try_parse(self.model)
            self.train_arm = name.arm if name is not None else ""
        if not self.langs:
            raise DataError("no language chosen")
        bad_k = [k for k in self.ks if k < 1]
        if bad_k or not self.ks:
            raise DataError(f"K must be positive integers, got {list(self.ks)}")
        for p in self.cs_ps:
            if not (0.0 <= p <= 1.0) or math.isnan(p):
                raise DataError(f"code-switching probability p={p} is outside [0, 1]")
        if self.max_images is not None and int(self.max_images) < 1:
            # 0 must not silently mean "every photo" (a falsy check did that)
            raise DataError(f"max_images must be a positive number of photos, got {self.max_images}; leave it out "
                            "to evaluate every photo")

    def params(self) -> dict:
        """What the manifest records; fields added later are left out at their defaults ("" run set, no separate
        query seed), so runs made before them keep their key."""
        out = {key: (list(value) if isinstance(value, tuple) else value) for key, value in asdict(self).items()}
        if not out["run_set"]:
            del out["run_set"]
        if out["cs_query_seed"] is None or out["cs_query_seed"] == out["seed"]:
            del out["cs_query_seed"]
        return out


@dataclass
class EvalOutcome:
    run_id: str
    rows: pd.DataFrame
    ranks: pd.DataFrame
    notes: list[str]
    languages: dict[str, dict] = field(default_factory=dict)  # evaluated language → provenance, captions, photos


class _Ticker:
    """Turns encoder batch callbacks into stage progress and raises CancelledError between batches."""

    def __init__(self, progress: EvalProgress | None, cancel: threading.Event | None):
        self.progress = progress
        self.cancel = cancel

    def check(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise CancelledError("evaluation cancelled; no rows were written")

    def stage(self, label: str) -> Callable[[int, int], None]:
        def tick(done: int, total: int) -> None:
            self.check()
            if self.progress is not None:
                self.progress(label, done, total)

        return tick


def run_evaluation(
    config: EvalConfig,
    *,
    encoder=None,
    dataset=None,
    store=None,
    progress: EvalProgress | None = None,
    cancel: threading.Event | None = None,
    write: bool = True,
    allow_duplicate_images: bool = False,
) -> EvalOutcome:
    """Run every chosen setting and write one run (rows + per-query ranks) atomically; nothing on cancel.

    Refused before any model loads or photo is encoded: a gallery that lists one photo twice (same file, or
    byte-identical files; `allow_duplicate_images=True` runs anyway and labels the run), K not below the gallery
    size; then, once the encoder is known, photos it was trained on (`config.allow_leakage` runs anyway, labelled).
    """
    from csr_core.datasets import load_dataset
    from csr_core.encoders.registry import load_encoder
    from csr_core.results import ResultsStore, build_manifest, make_rows

    ticker = _Ticker(progress, cancel)
    ticker.check()
    if dataset is None:
        dataset = load_dataset(config.dataset, split=config.split, **config.dataset_options)
    if config.max_images is not None:
        dataset = dataset.subset(config.max_images)
    _check_ks(config, dataset)
    duplicates = _guard_duplicate_images(dataset, allow=allow_duplicate_images)
    loaded_here = encoder is None
    if encoder is None:
        from csr_core.encoders import memo
        from csr_core.encoders.registry import check_model_paths, parse_model_name

        check_model_paths(parse_model_name(config.model))  # a remembered model too: the memo skips load_encoder
        # a model built before is known by its remembered fingerprint: built again only if a vector is not cached
        encoder = memo.lazy_encoder(config.model, lambda: load_encoder(config.model)) or load_encoder(config.model)
    leakage = _guard_leakage(config, encoder, dataset)

    context = _EvalContext(config, encoder, dataset, ticker)
    if duplicates:
        context.notes.append(f"DUPLICATE IMAGES (allowed): {duplicates}")
    if leakage:
        context.notes.append(f"LEAKAGE (allowed): {leakage}")
    records: list[dict] = []
    rank_frames: list[pd.DataFrame] = []
    for setting in config.settings:
        ticker.check()
        setting_records, setting_ranks = get_setting(setting).run(context)
        records.extend(setting_records)
        rank_frames.extend(setting_ranks)

    if loaded_here:  # never for an encoder the caller built: it need not be what config.model names
        from csr_core.encoders import memo

        memo.remember(config.model, encoder)  # the next warm run of this model skips building it
    rows = make_rows(records)
    ranks = pd.concat(rank_frames, ignore_index=True) if rank_frames else pd.DataFrame()
    ticker.check()
    run_id = ""
    facts = context.dataset_facts()
    if write:
        store = store or ResultsStore()
        fingerprints = {"model": encoder.fingerprint, "data": dataset.fingerprint, **context.lexicon_fingerprints}
        manifest = build_manifest(config.params(), fingerprints)
        manifest["dataset"] = facts
        if leakage:
            manifest["leakage"] = leakage  # the run is labelled: its scores include photos the model was trained on
        if duplicates:
            manifest["duplicate_images"] = duplicates  # labelled: some queries had two copies of their photo
        run_id = store.write_run(rows, manifest, ranks)
        rows = rows.assign(run_id=run_id)
    return EvalOutcome(run_id=run_id, rows=rows, ranks=ranks, notes=context.notes, languages=facts["languages"])


def _check_ks(config: EvalConfig, dataset) -> None:
    """K at or beyond the photo gallery makes every text->image query a hit (R@K = 100 by construction): refuse it
    instead of storing a number that measures nothing."""
    too_big = [k for k in config.ks if k >= len(dataset)]
    if too_big:
        raise DataError(
            f"K={max(too_big)} is not smaller than the gallery: {dataset.name}/{dataset.split} has {len(dataset)} "
            f"images here, so R@{max(too_big)} would be 100 for every query; choose K < {len(dataset)}"
        )


def _resolve_langs(requested: Sequence[str], dataset) -> tuple[list[str], list[str]]:
    """(dataset language keys to evaluate, requested languages the dataset lacks). A key of the dataset is taken as
    it is ('en-x-f8k'); any other code is normalised ('deu' -> 'de', 'jp' -> 'ja'), so an unknown code ('xx') is an
    error naming it and two codes for one language ('de', 'deu') are refused rather than one silently skipped."""
    from csr_core.languages import normalize_lang

    found: list[str] = []
    missing: list[str] = []
    seen: dict[str, str] = {}
    for code in requested:
        key = code if code in dataset.languages else normalize_lang(code)
        if key in seen:
            raise DataError(f"language codes {seen[key]!r} and {code!r} both mean {key!r}: give each language once")
        seen[key] = code
        (found if key in dataset.languages else missing).append(key)
    return found, missing


def _guard_leakage(config: EvalConfig, encoder, dataset) -> str:
    """Refuse to score a model on photos it was trained on, when its training photos are known; with allow_leakage,
    what overlaps (for the run's notes and manifest), else "". The guard sees the dataset actually evaluated (its
    split and, with max_images, its subset), so whatever split is chosen is checked; the error names the model."""
    from csr_core.datasets import check_leakage

    from csr_core.encoders.base import traits

    known = traits(encoder)
    if not known.known_training_data:
        return ""
    report = check_leakage(dataset, set(known.training_image_ids), allow=config.allow_leakage,
                           model_training_sources=known.training_sources,
                           model=config.model or str(getattr(encoder, "name", "")))
    return "" if report.ok else report.message


def _guard_duplicate_images(dataset, allow: bool) -> str:
    """Refuse a gallery that lists one photo twice (two ids for one file, or byte-identical files): a query whose
    photo is there twice has two correct-looking answers, so its Recall@K is wrong. With `allow`, the finding (for
    the run's notes and manifest), else ""."""
    from csr_core.images import find_duplicate_images

    if dataset.image_paths is None:
        return ""
    paths, ids = list(dataset.image_paths), list(dataset.image_ids)
    found = find_duplicate_images(paths)
    if not found:
        return ""
    pairs = [f"{ids[d.first]!r} ({paths[d.first]}) and {ids[d.second]!r} ({paths[d.second]}): {d.how}"
             + (f" (sha256 {d.sha256[:16]})" if d.sha256 else "") for d in found]
    shown = "; ".join(pairs[:10]) + (f"; ... and {len(pairs) - 10} more" if len(pairs) > 10 else "")
    message = (f"{len(found)} image(s) of {dataset.name}/{dataset.split} repeat another image of its gallery: {shown}")
    if not allow:
        raise DataError(
            f"duplicate images: {message}. One photo listed twice gives its queries two correct-looking answers, so "
            "Recall@K would be wrong; remove the copies, or pass allow_duplicate_images=True "
            "(eval --allow-duplicate-images) to run anyway (the run is then labelled)."
        )
    return message


class _EvalContext:
    """Shared state of one evaluation: the dataset, encoder, cached embeddings and the row/rank builders."""

    def __init__(self, config: EvalConfig, encoder, dataset, ticker: _Ticker):
        self.config = config
        self.encoder = encoder
        self.dataset = dataset
        self.ticker = ticker
        self.notes: list[str] = []
        self.lexicon_fingerprints: dict[str, str] = {}
        self._image_emb: np.ndarray | None = None
        self._text_emb: dict[str, np.ndarray] = {}
        self.langs, missing = _resolve_langs(config.langs, dataset)
        if missing:
            self.notes.append(f"{dataset.name}/{dataset.split} has no captions in {', '.join(missing)}: skipped")
        if not self.langs:
            raise DataError(
                f"none of the languages {list(config.langs)} exist in {dataset.name}/{dataset.split} "
                f"(it has {', '.join(sorted(dataset.languages))})"
            )

    def dataset_facts(self) -> dict:
        """What a reader of the run needs to compare its languages fairly: each evaluated language's provenance and
        size, and which of them are line-aligned (only those may be paired caption by caption)."""
        described = self.dataset.describe()
        langs = set(self.langs)
        return {
            "name": self.dataset.name,
            "split": self.dataset.split,
            "images": len(self.dataset),
            "languages": {lang: described["languages"][lang] for lang in self.langs if lang in described["languages"]},
            "alignments": [g for g in (sorted(set(a) & langs) for a in described["alignments"]) if len(g) > 1],
        }

    # ---- embeddings -------------------------------------------------------------------------------------------
    def image_embeddings(self) -> np.ndarray:
        from csr_core.embed_cache import cached_encode_images

        if self.dataset.image_paths is None:
            raise DataError(
                f"{self.dataset.name} is text-only here (no image folder given): image settings need images; "
                "the cross-lingual setting runs on text alone"
            )
        if self._image_emb is None:
            self._image_emb = cached_encode_images(
                self.encoder, list(self.dataset.image_paths), progress=self.ticker.stage("encode images")
            )
        return self._image_emb

    def text_embeddings(self, texts: Sequence[str], lang: str | None, label: str) -> np.ndarray:
        from csr_core.embed_cache import cached_encode_texts

        return cached_encode_texts(self.encoder, list(texts), lang=lang, progress=self.ticker.stage(label))

    def caption_embeddings(self, lang: str):
        flat = self.dataset.flat(lang)
        if lang not in self._text_emb:
            self._text_emb[lang] = self.text_embeddings(flat.texts, lang, f"encode captions {lang}")
        return flat, self._text_emb[lang]

    # ---- rows -------------------------------------------------------------------------------------------------
    def base(self, **fields) -> dict:
        return {
            "model": self.config.model,
            "dataset": self.dataset.name,
            "split": self.dataset.split,
            "train_arm": self.config.train_arm,
            "seed": self.config.seed,
            **fields,
        }

    def recall_records(self, ranks: np.ndarray, *, photos: np.ndarray | None = None, **fields) -> list[dict]:
        """R@K with bootstrap CIs, mean/median rank, and a note where the query count is too small to mean much.

        `photos` (the photo of each query) makes the CI a photo-level cluster bootstrap: the captions of one photo
        are not independent queries (five Flickr8k captions, or every language of a multilingual gallery)."""
        from csr_core.metrics import hits_at_k, recall_at_k
        from csr_core.stats import bootstrap_ci, cluster_bootstrap, reliability_note

        n = int(len(ranks))
        note = reliability_note(n)
        recalls = recall_at_k(ranks, self.config.ks)
        records = []
        for k in self.config.ks:
            hits = hits_at_k(ranks, k)
            if photos is not None and len(np.unique(photos)) < n:
                est = cluster_bootstrap(hits, photos, seed=self.config.seed, n_resamples=self.config.n_resamples)
                low, high = est.low, est.high
            else:  # one query per photo: the plain bootstrap is the cluster bootstrap
                low, high = bootstrap_ci(hits, seed=self.config.seed, n_resamples=self.config.n_resamples)
            records.append(
                self.base(metric="recall", k=k, value=recalls[k], n_queries=n, ci_low=low, ci_high=high,
                          note=note, **fields)
            )
        records.append(self.base(metric="median_rank", value=float(np.median(ranks)), n_queries=n, note=note,
                                 **fields))
        records.append(self.base(metric="mean_rank", value=float(np.mean(ranks)), n_queries=n, note=note, **fields))
        return records

    @staticmethod
    def rank_frame(ranks: np.ndarray, query_ids: Sequence[str], **fields) -> pd.DataFrame:
        frame = pd.DataFrame({"query_id": list(query_ids), "rank": np.asarray(ranks, dtype=np.int64)})
        for key in ("setting", "query_lang", "doc_lang", "direction", "cs_mode", "cs_langs"):
            frame[key] = fields.get(key, "")
        frame["cs_p"] = float(fields.get("cs_p", float("nan")))
        return with_query_columns(frame)


def _monolingual(ctx: _EvalContext) -> tuple[list[dict], list[pd.DataFrame]]:
    from csr_core.metrics import image_text_ranks, mean_recall, recall_at_k
    from csr_core.stats import reliability_note

    image_emb = ctx.image_embeddings()
    records: list[dict] = []
    frames: list[pd.DataFrame] = []
    for lang in ctx.langs:
        flat, text_emb = ctx.caption_embeddings(lang)
        if len(flat.texts) == 0:
            ctx.notes.append(f"monolingual {lang}: no captions")
            continue
        ctx.ticker.check()
        caption_image = np.asarray(flat.caption_image, dtype=np.int64)
        # one pass for both directions; image->text: only images with a caption in this language are queries
        ranks = image_text_ranks(text_emb, image_emb, caption_image)
        t2i, i2t, query_images = ranks.t2i, ranks.i2t, ranks.query_images
        t2i_fields = dict(setting="monolingual", query_lang=lang, doc_lang="img", direction="t2i")
        i2t_fields: dict[str, Any] = dict(setting="monolingual", query_lang="img", doc_lang=lang, direction="i2t")
        records += ctx.recall_records(t2i, photos=caption_image, **t2i_fields)
        records += ctx.recall_records(i2t, **i2t_fields)
        if set(ctx.config.ks) >= {1, 5, 10}:
            value = mean_recall(recall_at_k(t2i, (1, 5, 10)), recall_at_k(i2t, (1, 5, 10)))
            records.append(ctx.base(setting="monolingual", query_lang=lang, doc_lang=lang, direction="t2i",
                                    metric="mean_recall", value=value, n_queries=len(t2i),
                                    note=reliability_note(len(t2i))))
        frames.append(ctx.rank_frame(t2i, flat.caption_ids, **t2i_fields))
        image_ids = [ctx.dataset.image_ids[i] for i in query_images]
        frames.append(ctx.rank_frame(i2t, image_ids, **i2t_fields))
    return records, frames


def _cross(ctx: _EvalContext) -> tuple[list[dict], list[pd.DataFrame]]:
    from csr_core.metrics import parallel_ranks

    if len(ctx.langs) < 2:
        ctx.notes.append("cross-lingual needs at least two languages: skipped")
        return [], []
    groups = [[lang for lang in ctx.langs if lang in group] for group in ctx.dataset.alignments]
    groups = [g for g in groups if len(g) > 1]
    grouped = {lang for g in groups for lang in g}
    dropped = [lang for lang in ctx.langs if lang not in grouped]
    if dropped:
        ctx.notes.append(f"cross-lingual: {', '.join(dropped)} captions are not line-aligned translations of another "
                         "chosen language: left out")
    if not groups:
        ctx.notes.append("cross-lingual needs at least two parallel languages: skipped")
        return [], []
    records: list[dict] = []
    frames: list[pd.DataFrame] = []
    for aligned in groups:  # caption pairs exist only inside one alignment group
        parallel = ctx.dataset.parallel(aligned)
        if parallel.skipped:
            ctx.notes.append(f"cross-lingual {'/'.join(aligned)}: {len(parallel.ids)} aligned captions of "
                             f"{len(set(parallel.caption_image.tolist()))} photos ({len(parallel.skipped)} photos "
                             "lack captions in one of them)")
        embeddings = {
            lang: ctx.text_embeddings(parallel.texts[lang], lang, f"encode parallel {lang}") for lang in aligned
        }
        for query_lang in aligned:
            for doc_lang in aligned:
                if query_lang == doc_lang:
                    continue
                ctx.ticker.check()
                ranks = parallel_ranks(embeddings[query_lang], embeddings[doc_lang])
                fields = dict(setting="cross", query_lang=query_lang, doc_lang=doc_lang, direction="t2t")
                records += ctx.recall_records(ranks, photos=np.asarray(parallel.caption_image), **fields)
                frames.append(ctx.rank_frame(ranks, parallel.ids, **fields))
    return records, frames


def _multilingual(ctx: _EvalContext) -> tuple[list[dict], list[pd.DataFrame]]:
    from csr_core.metrics import image_text_ranks
    from csr_core.stats import reliability_note

    image_emb = ctx.image_embeddings()
    groups, langs_of, ids = [], [], []
    embeddings = []
    for lang in ctx.langs:
        flat, emb = ctx.caption_embeddings(lang)
        embeddings.append(emb)
        groups.append(np.asarray(flat.caption_image, dtype=np.int64))
        langs_of += [lang] * len(flat.texts)
        ids += [f"{lang}:{cid}" for cid in flat.caption_ids]
    gallery = np.concatenate(embeddings)
    caption_image = np.concatenate(groups)
    langs_of_arr = np.asarray(langs_of)
    ctx.ticker.check()
    ranks = image_text_ranks(gallery, image_emb, caption_image)  # one pass for both directions
    i2t, t2i, query_images = ranks.i2t, ranks.t2i, ranks.query_images
    i2t_fields: dict[str, Any] = dict(setting="multilingual", query_lang="img", doc_lang="all", direction="i2t")
    records = ctx.recall_records(i2t, **i2t_fields)
    top1 = _top1_indices(image_emb[query_images], gallery)
    shares = pd.Series(langs_of_arr[top1]).value_counts(normalize=True)
    for lang in ctx.langs:
        records.append(ctx.base(setting="multilingual", query_lang="img", doc_lang=lang, direction="i2t",
                                metric="lang_share", k=1, value=100.0 * float(shares.get(lang, 0.0)),
                                n_queries=len(query_images), note=reliability_note(len(query_images))))
    t2i_fields = dict(setting="multilingual", query_lang="all", doc_lang="img", direction="t2i")
    records += ctx.recall_records(t2i, photos=caption_image, **t2i_fields)
    frames = [
        ctx.rank_frame(i2t, [ctx.dataset.image_ids[i] for i in query_images], **i2t_fields),
        ctx.rank_frame(t2i, ids, **t2i_fields),
    ]
    return records, frames


def _top1_indices(queries: np.ndarray, gallery: np.ndarray, chunk_size: int = 2048) -> np.ndarray:
    """Index of the best gallery item per query, chunked so memory stays one block of the similarity matrix."""
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk_size):
        out[start : start + chunk_size] = np.argmax(queries[start : start + chunk_size] @ gallery.T, axis=1)
    return out


def _cs_queries(ctx: _EvalContext) -> tuple[list[dict], list[pd.DataFrame]]:
    from csr_core.codeswitch import CodeSwitcher
    from csr_core.lexicon import load_muse
    from csr_core.metrics import first_hit_ranks

    if "en" not in ctx.dataset.languages:
        ctx.notes.append("code-switched queries need English captions: skipped")
        return [], []
    targets = list(ctx.config.cs_langs or [lang for lang in ctx.langs if lang != "en"])
    if not targets:
        ctx.notes.append("code-switched queries need at least one target language: skipped")
        return [], []
    lexicons = {lang: load_muse(lang) for lang in targets}
    ctx.lexicon_fingerprints.update({f"lexicon:en-{lang}": lex.fingerprint for lang, lex in lexicons.items()})
    image_emb = ctx.image_embeddings()
    flat = ctx.dataset.flat("en")
    caption_image = np.asarray(flat.caption_image, dtype=np.int64)
    image_groups = np.arange(len(image_emb))

    variants: list[tuple[str, tuple[str, ...]]] = []
    for mode in ctx.config.cs_modes:
        if mode == "ml":
            variants.append(("ml", tuple(targets)))
        else:
            variants += [(mode, (lang,)) for lang in targets]
    records: list[dict] = []
    frames: list[pd.DataFrame] = []
    for mode, langs in variants:
        # dictionary translation is word-by-word at p = 1 by definition: one point, not a curve
        for p in ((1.0,) if mode == "dictionary" else ctx.config.cs_ps):
            ctx.ticker.check()
            query_seed = ctx.config.seed if ctx.config.cs_query_seed is None else ctx.config.cs_query_seed
            switcher = CodeSwitcher({lang: lexicons[lang] for lang in langs}, mode=mode, p=p, seed=query_seed,
                                    langs=list(langs))
            switched = [item.text for item in switcher.switch_batch(flat.texts)]
            label = f"cs-queries {mode} {','.join(langs)} p={p:g}"
            emb = ctx.text_embeddings(switched, langs[0] if len(langs) == 1 else None, label)
            ranks = first_hit_ranks(emb, image_emb, caption_image, image_groups)
            fields = dict(setting="cs-queries", query_lang="en", doc_lang="img", direction="t2i", cs_mode=mode,
                          cs_p=p, cs_langs=",".join(langs))
            records += ctx.recall_records(ranks, photos=caption_image, **fields)
            frames.append(ctx.rank_frame(ranks, flat.caption_ids, **fields))
    return records, frames


def _translate_test(ctx: _EvalContext) -> tuple[list[dict], list[pd.DataFrame]]:
    """Captions of each non-English language translated word by word into English (inverted MUSE), then t2i."""
    from csr_core.lexicon import load_muse, muse_path
    from csr_core.metrics import first_hit_ranks
    from csr_core.translate_test import reverse_lexicon, word_by_word

    image_emb = ctx.image_embeddings()
    records: list[dict] = []
    frames: list[pd.DataFrame] = []
    for lang in ctx.langs:
        if lang == "en":
            continue
        base = lang.split("-x-")[0]
        if muse_path(base) is None:
            ctx.notes.append(f"translate-test {lang}: no MUSE en-{base} dictionary to invert: skipped")
            continue
        ctx.ticker.check()
        lexicon = reverse_lexicon(base)
        ctx.lexicon_fingerprints[f"lexicon:en-{base}"] = load_muse(base).fingerprint
        flat = ctx.dataset.flat(lang)
        translated = word_by_word(flat.texts, base, lexicon)
        ctx.notes.append(f"translate-test {lang}: {100 * translated.token_share:.0f}% of word tokens translated")
        emb = ctx.text_embeddings(translated.texts, "en", f"translate-test {lang}")
        caption_image = np.asarray(flat.caption_image, dtype=np.int64)
        ranks = first_hit_ranks(emb, image_emb, caption_image, np.arange(len(image_emb)))
        fields = dict(setting="translate-test", query_lang=lang, doc_lang="img", direction="t2i")
        records += ctx.recall_records(ranks, photos=caption_image, **fields)
        frames.append(ctx.rank_frame(ranks, flat.caption_ids, **fields))
    return records, frames

