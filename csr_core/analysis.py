"""Questions asked of stored per-query ranks: the gap to English, and whether one run beats another.

Both work on the `ranks.parquet` frame of a run (`ResultsStore.load_ranks`), so every difference is paired on the
same queries where the data allows it (Multi30K captions are line-aligned translations, images are shared), with a
bootstrap CI of the paired difference, an exact McNemar test, and Holm correction across languages.
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
from csr_core.stats import adjust_tested, bootstrap_ci, paired_test, reliability_note

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


def _paired_difference(hits_a: np.ndarray, hits_b: np.ndarray, seed: int, n_resamples: int):
    diff = 100.0 * (hits_a.astype(float) - hits_b.astype(float))
    low, high = bootstrap_ci(diff, seed=seed, n_resamples=n_resamples)
    test = paired_test(hits_a, hits_b, method="mcnemar")
    return low, high, test.p_value


def _unpaired_difference(hits_a: np.ndarray, hits_b: np.ndarray, seed: int, n_resamples: int):
    """Independent bootstrap of the two means; no test (queries differ), so the p-value is NaN."""
    rng = np.random.default_rng(seed)
    a = rng.choice(hits_a.astype(float), size=(n_resamples, len(hits_a))).mean(axis=1)
    b = rng.choice(hits_b.astype(float), size=(n_resamples, len(hits_b))).mean(axis=1)
    low, high = np.percentile(100.0 * (a - b), [2.5, 97.5])
    return float(low), float(high), float("nan")


def language_gaps(ranks: pd.DataFrame, *, k: int = 10, setting: str = "monolingual", direction: str = "t2i",
                  pivot: str = "en", seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """gap = R@K(pivot) - R@K(X) per language X, paired on shared query ids where possible, Holm across languages."""
    if setting not in ("monolingual", "multilingual"):
        raise DataError(f"language gaps are defined for image settings (monolingual, multilingual), not {setting!r}")
    selected = _select(ranks, setting, direction)
    if selected.empty:
        return pd.DataFrame(columns=GAP_COLUMNS)
    by_lang = {lang: frame.set_index("query_id")["rank"] for lang, frame in selected.groupby("lang")}
    if pivot not in by_lang:
        raise DataError(f"no {setting}/{direction} ranks in pivot language {pivot!r} (have {sorted(by_lang)})")
    pivot_ranks = by_lang[pivot]
    records = []
    for lang, lang_ranks in sorted(by_lang.items()):
        if lang == pivot:
            continue
        shared = pivot_ranks.index.intersection(lang_ranks.index)
        paired = len(shared) == len(pivot_ranks) == len(lang_ranks)
        if paired:
            hits_p = hits_at_k(pivot_ranks.loc[shared].to_numpy(), k)
            hits_x = hits_at_k(lang_ranks.loc[shared].to_numpy(), k)
            low, high, p_value = _paired_difference(hits_p, hits_x, seed, n_resamples)
        else:
            hits_p = hits_at_k(pivot_ranks.to_numpy(), k)
            hits_x = hits_at_k(lang_ranks.to_numpy(), k)
            low, high, p_value = _unpaired_difference(hits_p, hits_x, seed, n_resamples)
        n = int(min(len(hits_p), len(hits_x)))
        records.append({
            "lang": lang, "pivot_value": 100.0 * hits_p.mean(), "lang_value": 100.0 * hits_x.mean(),
            "gap": 100.0 * (hits_p.mean() - hits_x.mean()), "ci_low": low, "ci_high": high, "n": n,
            "paired": paired, "p_value": p_value, "note": reliability_note(n),
        })
    return _with_holm(pd.DataFrame(records, columns=[c for c in GAP_COLUMNS if c != "p_holm"]), GAP_COLUMNS)


def compare_runs(ranks_a: pd.DataFrame, ranks_b: pd.DataFrame, *, k: int = 10, setting: str = "monolingual",
                 direction: str = "t2i", cs_mode: str = "", cs_p: float | None = None, seed: int = 0,
                 n_resamples: int = 1000, alpha: float = 0.05) -> pd.DataFrame:
    """R@K(a) - R@K(b) per language on the same queries: paired CI, exact McNemar, Holm across languages."""
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
        low, high, p_value = _paired_difference(hits_a, hits_b, seed, n_resamples)
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
    """Gap to the pivot per language group (close / distant), paired on the queries every language shares.

    Per query: hit(pivot) − mean hit over the group's languages, in points; a bootstrap CI per group and a paired
    permutation test close vs distant on the same queries. Returns (table[group, value, ci_low, ci_high, n, langs],
    test{diff, p_value, n, note}).
    """
    from csr_core.metrics import hits_at_k
    from csr_core.stats import bootstrap_ci, paired_test

    cols = ["group", "value", "ci_low", "ci_high", "n", "langs"]
    mask = (ranks["setting"] == setting) & (ranks["direction"] == direction) & (ranks["cs_mode"].fillna("") == "")
    part = ranks[mask]
    lang_of = part["query_lang"].where(part["query_lang"] != "img", part["doc_lang"])
    by_lang = {lang: frame.set_index("query_id")["rank"] for lang, frame in part.groupby(lang_of)}
    test: dict[str, Any] = {"diff": math.nan, "p_value": math.nan, "n": 0, "note": ""}
    if pivot not in by_lang:
        test["note"] = f"no {setting}/{direction} ranks in the pivot language {pivot!r}"
        return pd.DataFrame(columns=cols), test
    members = {g: [lang for lang, grp in groups.items() if grp == g and lang in by_lang and lang != pivot]
               for g in ("close", "distant")}
    shared = by_lang[pivot].index
    for langs in members.values():
        for lang in langs:
            shared = shared.intersection(by_lang[lang].index)
    shared = shared.sort_values()
    per_query: dict[str, np.ndarray] = {}
    records = []
    if len(shared):
        pivot_hits = hits_at_k(by_lang[pivot].loc[shared].to_numpy(), k).astype(float)
        for group, langs in members.items():
            if not langs:
                continue
            group_hits = np.mean([hits_at_k(by_lang[lang].loc[shared].to_numpy(), k) for lang in langs], axis=0)
            values = 100.0 * (pivot_hits - group_hits)
            per_query[group] = values
            low, high = bootstrap_ci(values, seed=seed, n_resamples=n_resamples)
            records.append({"group": group, "value": float(values.mean()), "ci_low": low, "ci_high": high,
                            "n": int(len(values)), "langs": ",".join(langs)})
    missing = [g for g, langs in members.items() if not langs]
    if missing:
        test["note"] = f"no language of this run is in the {' / '.join(missing)} group"
    elif not len(shared):
        test["note"] = "the languages share no query ids, so groups cannot be compared on the same queries"
    else:
        a, b = per_query["close"], per_query["distant"]
        note = "gap(close) − gap(distant), paired permutation test on shared queries"
        if int(np.sum(a != b)) < 2:
            # exact: with at most one differing query every sign flip gives the same |difference| (scipy refuses
            # to permute a single observation)
            test.update(diff=float(np.mean(a) - np.mean(b)), p_value=1.0, n=int(len(a)),
                        note=note + " (fewer than two queries differ: p = 1 exactly)")
        else:
            result = paired_test(a, b, method="permutation", seed=seed)
            test.update(diff=result.diff, p_value=result.p_value, n=result.n, note=note)
    return pd.DataFrame(records, columns=cols), test
