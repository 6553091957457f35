"""Questions asked of stored per-query ranks: the gap to English, and whether one run beats another.

Both work on the `ranks.parquet` frame of a run (`ResultsStore.load_ranks`), so every difference is paired on the
same queries where the data allows it (Multi30K captions are line-aligned translations, images are shared), with a
photo-level cluster bootstrap CI of the paired difference, a paired permutation test that swaps whole photos
(`stats.cluster_permutation_test`), and Holm correction across languages.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
import pandas as pd

from csr_core.errors import DataError
from csr_core.metrics import hits_at_k
from csr_core.results import caption_lang
from csr_core.settings import get_setting
from csr_core.stats import (
    adjust_tested,
    bootstrap_ci,
    cluster_permutation_test,
    paired_difference,
    paired_test,
    reliability_note,
)

GAP_COLUMNS = ["lang", "pivot_value", "lang_value", "gap", "ci_low", "ci_high", "n", "paired", "p_value", "p_holm",
               "note"]
COMPARE_COLUMNS = ["lang", "value_a", "value_b", "delta", "ci_low", "ci_high", "n", "p_value", "p_holm",
                   "significant", "note"]


def _select(ranks: pd.DataFrame, setting: str, direction: str) -> pd.DataFrame:
    """Rank rows of one plain (not code-switched) setting/direction, with their caption language."""
    if ranks.empty:
        return ranks.assign(lang=pd.Series(dtype=str))
    mask = (ranks["setting"] == setting) & (ranks["direction"] == direction) & (ranks["cs_mode"].fillna("") == "")
    out = ranks[mask].copy()
    out["lang"] = caption_lang(out).to_numpy()
    return out


def _paired_difference(hits_a: np.ndarray, hits_b: np.ndarray, photos: np.ndarray, seed: int, n_resamples: int):
    """CI (photo bootstrap) and p-value (photo sign flips) of a - b in points: the captions of a photo move together."""
    est = paired_difference(hits_a.astype(float), hits_b.astype(float), photos, seed=seed, n_resamples=n_resamples)
    test = cluster_permutation_test(hits_a.astype(float), hits_b.astype(float), photos, seed=seed)
    return est.low, est.high, test.p_value


PAIRINGS = ("auto", "caption", "photo")


def run_alignments(manifest: Mapping[str, Any]) -> list[frozenset[str]] | None:
    """The line-aligned language groups a run recorded (`manifest["dataset"]["alignments"]`); None for runs written
    before runs recorded them (then caption pairing is inferred from identical query ids, as those runs allowed)."""
    facts = manifest.get("dataset") or {}
    if "alignments" not in facts:
        return None
    return [frozenset(group) for group in facts["alignments"]]


def _aligned(a: str, b: str, alignments: list[frozenset[str]] | None, ids_a: pd.Index, ids_b: pd.Index) -> bool:
    if alignments is None:
        return len(ids_a) == len(ids_b) == len(ids_a.intersection(ids_b))
    return any(a in group and b in group for group in alignments)


def _photo_means(frame: pd.DataFrame, k: int) -> pd.Series:
    """Each photo's mean hit@K over its queries in one language: the unit on which independent captions compare."""
    hits = pd.Series(hits_at_k(frame["rank"].to_numpy(), k).astype(float), index=frame["image_id"].to_numpy())
    return hits.groupby(level=0).mean()


def _photo_difference(a: np.ndarray, b: np.ndarray, seed: int, n_resamples: int) -> tuple[float, float, float]:
    """Paired by photo: bootstrap CI of the mean per-photo difference (points) and a sign-flip permutation test."""
    diff = 100.0 * (a - b)
    low, high = bootstrap_ci(diff, seed=seed, n_resamples=n_resamples)
    if int(np.sum(a != b)) < 2:
        return low, high, 1.0
    return low, high, paired_test(a, b, method="permutation", seed=seed).p_value


def language_gaps(ranks: pd.DataFrame, *, k: int = 10, setting: str = "monolingual", direction: str = "t2i",
                  pivot: str = "en", seed: int = 0, n_resamples: int = 1000, pairing: str = "auto",
                  alignments: list[frozenset[str]] | None = None) -> pd.DataFrame:
    """gap = R@K(pivot) - R@K(X) per language X, Holm across languages.

    How X is paired with the pivot (`pairing`):
      - `caption`: query by query (caption j of X translates caption j of the pivot: Multi30K task1 de/fr/cs/pt vs
        en); refused with a DataError when X and the pivot are not line-aligned (`alignments`, from the run's
        manifest: `run_alignments`), because caption j of independently written captions describes the photo
        differently and pairing them by line is meaningless.
      - `photo`: each photo's mean hit over its captions in that language, paired by photo across the shared
        gallery (always valid in image settings: every language retrieves the same photos); permutation test.
      - `auto` (default): caption where aligned, else photo.
    Image→text queries are photos in every language, so i2t is paired on the photo ids.
    """
    if setting not in ("monolingual", "multilingual"):
        raise DataError(f"language gaps are defined for image settings (monolingual, multilingual), not {setting!r}")
    if pairing not in PAIRINGS:
        raise DataError(f"pairing must be one of {', '.join(PAIRINGS)}, got {pairing!r}")
    selected = _select(ranks, setting, direction)
    if selected.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    by_lang = {lang: frame for lang, frame in selected.groupby("lang")}
    if pivot not in by_lang:
        raise DataError(f"no {setting}/{direction} ranks in pivot language {pivot!r} (have {sorted(by_lang)})")
    pivot_frame = by_lang[pivot]
    pivot_ranks = pivot_frame.set_index("query_id")["rank"]
    records = []
    for lang, frame in sorted(by_lang.items()):
        if lang == pivot:
            continue
        lang_ranks = frame.set_index("query_id")["rank"]
        aligned = direction == "i2t" or _aligned(pivot, lang, alignments, pivot_ranks.index, lang_ranks.index)
        how = ("caption" if aligned else "photo") if pairing == "auto" else pairing
        if how == "caption" and not aligned:
            raise DataError(f"pairing {lang} with {pivot} caption by caption is refused: {lang}'s captions are not "
                            f"line-aligned translations of {pivot}'s (independent or unaligned captions of a photo "
                            "describe it differently); use pairing='photo'")
        if how == "caption":
            shared = pivot_ranks.index.intersection(lang_ranks.index)
            hits_p = hits_at_k(pivot_ranks.loc[shared].to_numpy(), k)
            hits_x = hits_at_k(lang_ranks.loc[shared].to_numpy(), k)
            photos = (pivot_frame.set_index("query_id")["image_id"].loc[shared].to_numpy()
                      if "image_id" in pivot_frame.columns else np.arange(len(shared)))
            low, high, p_value = _paired_difference(hits_p, hits_x, photos, seed, n_resamples)
            value_p, value_x, n = 100.0 * hits_p.mean(), 100.0 * hits_x.mean(), len(shared)
        else:
            photos_p, photos_x = _photo_means(pivot_frame, k), _photo_means(frame, k)
            shared = photos_p.index.intersection(photos_x.index).sort_values()
            a, b = photos_p.loc[shared].to_numpy(), photos_x.loc[shared].to_numpy()
            low, high, p_value = _photo_difference(a, b, seed, n_resamples)
            value_p, value_x, n = 100.0 * a.mean(), 100.0 * b.mean(), len(shared)
        records.append({
            "lang": lang, "pivot_value": value_p, "lang_value": value_x, "gap": value_p - value_x, "ci_low": low,
            "ci_high": high, "n": int(n), "paired": how, "p_value": p_value, "note": reliability_note(int(n)),
        })
    return _with_holm(pd.DataFrame(records, columns=[c for c in GAP_COLUMNS if c != "p_holm"]), GAP_COLUMNS)


def compare_runs(ranks_a: pd.DataFrame, ranks_b: pd.DataFrame, *, k: int = 10, setting: str = "monolingual",
                 direction: str = "t2i", cs_mode: str = "", cs_p: float | None = None, seed: int = 0,
                 n_resamples: int = 1000, alpha: float = 0.05) -> pd.DataFrame:
    """R@K(a) - R@K(b) per language on the same queries: photo-clustered paired CI and permutation test, Holm across
    languages.

    Refused (DataError) when the two runs ranked against different galleries (`check_same_gallery`)."""
    check_same_gallery(ranks_a, ranks_b, setting)
    if get_setting(setting).code_switched:
        a, b = _select_cs(ranks_a, setting, cs_mode, cs_p), _select_cs(ranks_b, setting, cs_mode, cs_p)
    else:
        a, b = _select(ranks_a, setting, direction), _select(ranks_b, setting, direction)
    records = []
    for lang in sorted(set(a["lang"]) & set(b["lang"])):
        ra = a[a["lang"] == lang].set_index("query_id")["rank"]
        rb = b[b["lang"] == lang].set_index("query_id")["rank"]
        shared = ra.index.intersection(rb.index)
        if len(shared) == 0:
            continue
        hits_a = hits_at_k(ra.loc[shared].to_numpy(), k)
        hits_b = hits_at_k(rb.loc[shared].to_numpy(), k)
        photos = a[a["lang"] == lang].set_index("query_id")["image_id"].loc[shared].to_numpy() \
            if "image_id" in a.columns else np.arange(len(shared))
        low, high, p_value = _paired_difference(hits_a, hits_b, photos, seed, n_resamples)
        n = len(shared)
        note = reliability_note(n)
        if len(shared) < max(len(ra), len(rb)):
            note = (note + "; " if note else "") + f"compared on the {n} queries both runs share"
        records.append({
            "lang": lang, "value_a": 100.0 * hits_a.mean(), "value_b": 100.0 * hits_b.mean(),
            "delta": 100.0 * (hits_a.mean() - hits_b.mean()), "ci_low": low, "ci_high": high, "n": n,
            "p_value": p_value, "note": note,
        })
    frame = _with_holm(pd.DataFrame(records, columns=[c for c in COMPARE_COLUMNS if c not in ("p_holm",
                                                                                             "significant")]),
                       [c for c in COMPARE_COLUMNS if c != "significant"])
    frame["significant"] = frame["p_holm"] < alpha
    return frame[COMPARE_COLUMNS]


def gallery_photos(ranks: pd.DataFrame, setting: str) -> frozenset[str]:
    """The photos a run's `setting` ranked over (every photo with a rank row: its queries or its gallery items)."""
    if ranks.empty or "image_id" not in ranks.columns:
        return frozenset()
    return frozenset(ranks.loc[ranks["setting"] == setting, "image_id"].dropna().astype(str))


def check_same_gallery(ranks_a: pd.DataFrame, ranks_b: pd.DataFrame, setting: str) -> int:
    """Two runs are comparable only over one gallery: R@K against 20 photos and against 237 measure different
    things, whatever queries they share. Returns the gallery size; raises DataError naming both sizes otherwise."""
    a, b = gallery_photos(ranks_a, setting), gallery_photos(ranks_b, setting)
    if a != b:
        raise DataError(f"not comparable: the runs ranked {setting} over different photo galleries ({len(a)} vs "
                        f"{len(b)} photos, {len(a & b)} shared); compare runs of the same dataset, split and photos")
    return len(a)


def _select_cs(ranks: pd.DataFrame, setting: str, cs_mode: str, cs_p: float | None) -> pd.DataFrame:
    """Code-switched cells are keyed by their target languages (`de`, or `de,fr,cs` for ML-CS)."""
    if ranks.empty:
        return ranks.assign(lang=pd.Series(dtype=str))
    mask = (ranks["setting"] == setting) & (ranks["cs_mode"] == cs_mode)
    if cs_p is not None:
        mask &= np.isclose(ranks["cs_p"].astype(float), cs_p)
    out = ranks[mask].copy()
    out["lang"] = out["cs_langs"]
    return out


def _with_holm(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    frame = frame.copy()
    frame["p_holm"] = adjust_tested(frame["p_value"].to_numpy(dtype=float), method="holm") if len(frame) else np.nan
    return frame[columns]


def group_contrast(ranks: pd.DataFrame, groups: Mapping[str, str], *, k: int = 10, setting: str = "monolingual",
                   direction: str = "t2i", pivot: str = "en", seed: int = 0,
                   n_resamples: int = 1000) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Gap to the pivot per language group (close / between / distant), paired by photo.

    Per photo: its mean hit over its pivot queries − the mean over the group's languages of its mean hit over that
    language's queries, in points. Pairing by photo is valid whatever the captions are (translations, independent,
    several per photo), because every language retrieves the same gallery; for one aligned caption per photo it
    equals pairing by query. A bootstrap CI per group and a paired permutation test close vs distant on the photos
    every language shares; a 'between' group (Czech by default) gets its bar but stays out of the test. Returns
    (table[group, value, ci_low, ci_high, n, langs], test{diff, p_value, n, note}).
    """
    from csr_core.stats import bootstrap_ci, paired_test

    cols = ["group", "value", "ci_low", "ci_high", "n", "langs"]
    part = _select(ranks, setting, direction)
    by_lang = {lang: _photo_means(frame, k) for lang, frame in part.groupby("lang")}
    test: dict[str, Any] = {"diff": math.nan, "p_value": math.nan, "n": 0, "note": ""}
    if pivot not in by_lang:
        test["note"] = f"no {setting}/{direction} ranks in the pivot language {pivot!r}"
        return pd.DataFrame(columns=cols), test
    members = {g: [lang for lang, grp in groups.items() if grp == g and lang in by_lang and lang != pivot]
               for g in ("close", "between", "distant")}
    shared = by_lang[pivot].index
    for langs in members.values():
        for lang in langs:
            shared = shared.intersection(by_lang[lang].index)
    shared = shared.sort_values()
    per_query: dict[str, np.ndarray] = {}
    records = []
    if len(shared):
        pivot_hits = by_lang[pivot].loc[shared].to_numpy()
        for group, langs in members.items():
            if not langs:
                continue
            group_hits = np.mean([by_lang[lang].loc[shared].to_numpy() for lang in langs], axis=0)
            values = 100.0 * (pivot_hits - group_hits)
            per_query[group] = values
            low, high = bootstrap_ci(values, seed=seed, n_resamples=n_resamples)
            records.append({"group": group, "value": float(values.mean()), "ci_low": low, "ci_high": high,
                            "n": int(len(values)), "langs": ",".join(langs)})
    missing = [g for g in ("close", "distant") if not members[g]]
    if missing:
        test["note"] = f"no language of this run is in the {' / '.join(missing)} group"
    elif not len(shared):
        test["note"] = "the languages share no photo, so groups cannot be compared on the same photos"
    else:
        a, b = per_query["close"], per_query["distant"]
        note = "gap(close) − gap(distant), paired permutation test on the shared photos"
        if int(np.sum(a != b)) < 2:
            # exact: with at most one differing photo every sign flip gives the same |difference| (scipy refuses
            # to permute a single observation)
            test.update(diff=float(np.mean(a) - np.mean(b)), p_value=1.0, n=int(len(a)),
                        note=note + " (fewer than two photos differ: p = 1 exactly)")
        else:
            result = paired_test(a, b, method="permutation", seed=seed)
            test.update(diff=result.diff, p_value=result.p_value, n=result.n, note=note)
    return pd.DataFrame(records, columns=cols), test
