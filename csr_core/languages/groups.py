"""Close / between / distant groups relative to English, and the gap-vs-distance correlation with bootstrap CIs."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pandas as pd

from csr_core.errors import DataError
from csr_core.languages.codes import base_lang, caption_set_key, typology_lang
from csr_core.languages.uriel import _check_kind, uriel_distance, uriel_source

# --------------------------------------------------------------------------------------------------------------
# groups and gap correlation
# --------------------------------------------------------------------------------------------------------------

#: The seed paper's grouping (relative to English).
PAPER_GROUPS: dict[str, list[str]] = {
    "close": ["de", "nl", "it", "fr", "es", "pt"],
    "distant": ["ar", "ru", "zh", "ja", "ko", "tr", "hi"],
}

#: The project's default grouping: the paper's, plus Czech between. Czech is in neither paper list and URIEL does not
#: settle it: its genetic distance from English (0.91) is below French's (0.94), yet it is Slavic and syntactically
#: further from English (0.60) than any close language (at most 0.42).
DEFAULT_GROUPS: dict[str, list[str]] = {
    "close": list(PAPER_GROUPS["close"]),
    "between": ["cs"],
    "distant": list(PAPER_GROUPS["distant"]),
}

Group = Literal["close", "between", "distant", "unknown"]
GROUPS: tuple[Group, ...] = ("close", "between", "distant", "unknown")


def _check_overrides(overrides: Mapping[str, str]) -> dict[str, Group]:
    """Overrides keyed by canonical caption-set key, every group checked."""
    out: dict[str, Group] = {}
    for code, group in overrides.items():
        if group not in GROUPS:
            raise DataError(f"group override {code}={group!r}: the group must be one of {', '.join(GROUPS)}")
        key = caption_set_key(code)
        if key in out:
            raise DataError(f"group override {code}={group!r}: {key} is given twice")
        out[key] = cast(Group, group)
    return out


def parse_group_overrides(text: str) -> dict[str, Group]:
    """``"cs=close, pl=between"`` -> ``{"cs": "close", "pl": "between"}`` (codes canonical): a text field's overrides."""
    out: dict[str, Group] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, sep, group = part.partition("=")
        if not sep or not code.strip():
            raise DataError(f"group override {part!r}: write it as <language>=<group>, e.g. 'cs=close'")
        ((key, value),) = _check_overrides({code.strip(): group.strip()}).items()
        if key in out:
            raise DataError(f"group override {part!r}: {key} is given twice")
        out[key] = value
    return out


def group_languages(
    langs: Iterable[str], threshold: float | None = None, kind: str = "genetic", pivot: str = "en",
    overrides: Mapping[str, str] | None = None,
) -> dict[str, Group]:
    """close / between / distant / unknown per language, keyed by the codes as given.

    ``threshold=None``: the project's groups (``DEFAULT_GROUPS``: the paper's, plus Czech between), matched on the
    base language, so ``pt-BR`` is close and ``zh-x-f8k`` distant; anything else is ``unknown``. With a threshold:
    URIEL ``kind`` distance from the pivot ``<= threshold`` is close, above is distant, no URIEL data is unknown.
    The pivot's own language (``en``, ``en-x-f8k``) is ``unknown`` either way: it is what the others are measured
    against. ``overrides`` (code -> group) win over both rules, matched on the caption set (``zh-x-f8k``), then its
    language (``zh-Hant``), then the base language (``zh``).
    """
    langs = list(langs)
    fixed = _check_overrides(overrides or {})
    if threshold is None:
        lookup: dict[str, Group] = {lang: cast(Group, grp) for grp, members in DEFAULT_GROUPS.items()
                                    for lang in members}

        def rule(lang: str) -> Group:
            return lookup.get(base_lang(lang), "unknown")
    else:
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            raise DataError(f"distance threshold must be a number in [0, 1], got {threshold!r}") from None
        if not 0.0 <= t <= 1.0:
            raise DataError(f"distance threshold must be in [0, 1] (URIEL distances are), got {threshold!r}")
        _check_kind(kind)

        def rule(lang: str) -> Group:
            try:
                return "close" if uriel_distance(pivot, lang, kind) <= t else "distant"
            except DataError:
                return "unknown"

    pivot_base = base_lang(pivot)
    out: dict[str, Group] = {}
    for lang in langs:
        keys = (caption_set_key(lang), typology_lang(lang), base_lang(lang))
        override = next((fixed[key] for key in keys if key in fixed), None)
        if override is not None:
            out[lang] = override
        elif keys[2] == pivot_base:
            out[lang] = "unknown"
        else:
            out[lang] = rule(lang)
    return out


def display_order(langs: Iterable[str], pivot: str = "en") -> list[str]:
    """The one language order of every table and chart: the pivot, then the default groups close, between,
    distant, each by genetic URIEL distance from the pivot; unknown codes last. A caption-set variant
    (``zh-x-f8k``) follows its language; codes that are not languages (``img``, ``all``) keep the very end."""
    def key(code: str) -> tuple:
        try:
            base = base_lang(code)
        except DataError:
            return (6, math.inf, code)
        if base == base_lang(pivot):
            return (0, 0.0, code != pivot, code)
        group = next((g for g, members in DEFAULT_GROUPS.items() if base in members), "unknown")
        try:
            distance = uriel_distance(pivot, base, "genetic")
        except DataError:
            distance = math.inf
        return (1 + ("close", "between", "distant", "unknown").index(group), distance, base, code != base, code)

    return sorted(dict.fromkeys(langs), key=key)


@dataclass(frozen=True)
class CorrelationResult:
    """Values (gaps, pair scores) vs typological distance; NaN numbers with a note where they would mean nothing.

    ``languages`` names the items used (languages, or pair labels such as ``de–fr``); the CIs are seeded percentile
    bootstrap intervals over those items.
    """

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    note: str
    kind: str = "genetic"
    languages: tuple[str, ...] = ()
    pearson_ci: tuple[float, float] = (math.nan, math.nan)
    spearman_ci: tuple[float, float] = (math.nan, math.nan)


#: Below this many items (languages, pairs) p-values from a correlation are flagged as indicative only.
FEW_LANGUAGES = 10
EXACT_P_MAX_ITEMS = 8  # up to 8! = 40320 orderings: correlation p-values are exact permutation p-values


def _bootstrap_correlations(x: np.ndarray, y: np.ndarray, seed: int, n_resamples: int, level: float
                            ) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Percentile CIs of Pearson r and Spearman rho over items resampled with replacement, and how many resamples
    were skipped because one side came out constant (no correlation is defined there)."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(int(n_resamples), len(x)))
    bx, by = x[idx], y[idx]
    ok = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)
    bx, by = bx[ok], by[ok]
    tail = 100.0 * (1.0 - level) / 2.0

    def interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        if not len(a):
            return math.nan, math.nan
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        r = np.clip((a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)), -1.0, 1.0)
        low, high = np.percentile(r, [tail, 100.0 - tail])
        return float(low), float(high)

    return interval(bx, by), interval(rankdata(bx, axis=1), rankdata(by, axis=1)), int((~ok).sum())


def correlate(
    distances: Iterable[float], values: Iterable[float], items: Iterable[str], *, kind: str = "genetic",
    notes: Iterable[str] = (), unit: str = "language", value: str = "gap", seed: int = 0, n_resamples: int = 2000,
    level: float = 0.95,
) -> CorrelationResult:
    """Pearson and Spearman (two-sided p) of ``values`` with ``distances``, with bootstrap CIs over the items.

    One implementation for per-language gaps (``gap_correlation``) and language pairs (``csr_core.pairs``). Fewer
    than 3 items, or a constant side, gives NaN and a note; fewer than ``FEW_LANGUAGES`` flags p-values as indicative.
    ``unit`` / ``value`` only word the notes ("language" / "gap", "pair" / "score").
    """
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise DataError(f"level must be in (0, 1), got {level}")
    xs = np.asarray(list(distances), dtype=float)
    ys = np.asarray(list(values), dtype=float)
    used = tuple(items)
    if not len(xs) == len(ys) == len(used):
        raise DataError(f"correlate: {len(xs)} distances, {len(ys)} values and {len(used)} items; need one of each")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise DataError("correlate: distances and values must be finite (leave items without one out, with a note)")
    notes = list(notes)
    n = len(used)
    nan = math.nan
    if n < 3:
        notes.insert(0, f"only {n} {unit}(s) with a {value} and a distance: a correlation needs at least 3")
        return CorrelationResult(n, nan, nan, nan, nan, "; ".join(notes), kind, used)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        which = "distances" if np.ptp(xs) == 0 else f"{value}s"
        notes.insert(0, f"all {which} are equal: correlation undefined")
        return CorrelationResult(n, nan, nan, nan, nan, "; ".join(notes), kind, used)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = stats.pearsonr(xs, ys)
        sr = stats.spearmanr(xs, ys)
    pearson_p, spearman_p = float(pr.pvalue), float(sr.pvalue)
    if n <= EXACT_P_MAX_ITEMS:
        # the t approximation behind scipy's p-values fails for a handful of items (n = 3, rho = 1 gives p = 0);
        # every ordering of n <= 8 items is cheap to enumerate, so the p-values are exact permutation p-values
        pearson_p, spearman_p = _exact_p(xs, ys)
        notes.append(f"p-values exact over all {math.factorial(n)} orderings of the {n} {unit}s")
    pearson_ci, spearman_ci, skipped = _bootstrap_correlations(xs, ys, seed, n_resamples, level)
    if n < FEW_LANGUAGES:
        notes.insert(0, f"only {n} {unit}s: treat p-values as indicative")
    notes.append(f"{100 * level:g}% CIs: percentile bootstrap over {unit}s ({n_resamples} resamples, seed {seed}"
                 + (f"; {skipped} with a constant side skipped)" if skipped else ")"))
    return CorrelationResult(n, float(pr.statistic), pearson_p, float(sr.statistic), spearman_p,
                             "; ".join(notes), kind, used, pearson_ci, spearman_ci)


def _exact_p(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    """Two-sided permutation p-values of Pearson r and Spearman rho over every ordering of `ys` (n <= 8: 40320)."""
    from itertools import permutations

    from scipy import stats

    def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # b: (orderings, n)
        a = a - a.mean()
        b = b - b.mean(axis=1, keepdims=True)
        return (b @ a) / np.sqrt((a @ a) * (b * b).sum(axis=1))

    orders = np.array(list(permutations(range(len(ys)))), dtype=np.int64)
    out = []
    for x, y in ((xs, ys), (stats.rankdata(xs), stats.rankdata(ys))):
        null = np.abs(pearson(x, y[orders]))
        observed = abs(float(pearson(x, y[None, :])[0]))
        out.append(float(np.mean(null >= observed - 1e-12)))
    return out[0], out[1]


def gap_correlation(
    gaps: Mapping[str, float] | pd.Series, kind: str = "genetic", pivot: str = "en", *, seed: int = 0,
    n_resamples: int = 2000,
) -> CorrelationResult:
    """Pearson and Spearman correlation (p-values, bootstrap CIs) of per-language gaps with URIEL distance from the
    pivot.

    Left out and named in the note: the pivot itself (gap and distance 0 by construction), other caption sets in the
    pivot's language (``en-x-f8k``: distance 0 by construction, so its gap says something about captions, not
    typology), and languages without a finite gap or URIEL data. A caption set of another language (``zh-x-f8k``)
    counts with its language's distance. Fewer than 3 languages, or a constant input, gives NaN and a note.
    """
    _check_kind(kind)
    canon_pivot = caption_set_key(pivot)
    pivot_lang = base_lang(pivot)
    seen: dict[str, str] = {}
    xs: list[float] = []
    ys: list[float] = []
    used: list[str] = []
    dropped: list[str] = []
    for raw, gap in list(gaps.items()):
        lang = caption_set_key(str(raw))
        if lang in seen:
            raise DataError(f"gaps has two entries for {lang!r}: {seen[lang]!r} and {raw!r}")
        seen[lang] = str(raw)
        if lang == canon_pivot:
            continue
        try:
            g = float(gap)
        except (TypeError, ValueError):
            raise DataError(f"gap for {raw!r} is not a number: {gap!r}") from None
        if base_lang(lang) == pivot_lang:
            dropped.append(f"{lang} (the pivot's language)")
            continue
        if not math.isfinite(g):
            dropped.append(f"{lang} (no gap)")
            continue
        try:
            d = uriel_distance(canon_pivot, lang, kind)
        except DataError:
            dropped.append(f"{lang} (no URIEL {kind} data)")
            continue
        xs.append(d)
        ys.append(g)
        used.append(lang)
    notes = [f"{kind} distance from {canon_pivot} ({uriel_source()})"]
    if dropped:
        notes.append("left out: " + ", ".join(dropped))
    return correlate(xs, ys, used, kind=kind, notes=notes, seed=seed, n_resamples=n_resamples)
