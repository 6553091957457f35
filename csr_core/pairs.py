"""Cross-lingual text retrieval between any two aligned languages, against the typological distance between them.

The gap-to-English view (csr_core.analysis) asks one question per language, always relative to English; a `cross`
run answers it for every pair: is retrieving Y's translation of an X caption harder when X and Y are typologically
far apart, whichever of them is English? XTD10's ten aligned languages give 45 pairs. Definitions (percent / points):

- directed R@K(X→Y): share of X captions whose translation in Y ranks within K among the Y captions (setting
  `cross`, direction t2t), with a seeded bootstrap CI over the queries.
- pair score S(X, Y) = (R@K(X→Y) + R@K(Y→X)) / 2, symmetric. Both directions rank the same parallel items, so its CI
  bootstraps the per-item mean of the two hits. A pair with one direction only has no score (NaN, with a note).
- pair gap = S(best pair of the run) − S(X, Y): how far the pair falls short of the run's best-retrieved pair. An
  X→X "ceiling" is not a cross-lingual retrieval, so the best pair stands in for one; the gap mirrors the score, and
  its correlation with distance is the score's with the sign flipped. Its CI is paired on the items both pairs rank.
- distance: URIEL `kind` distance between X and Y (csr_core.languages; caption-set keys count as their language,
  `zh-x-f8k` → `zh`). A pair without URIEL data keeps its row with distance NaN and is listed in `missing`.

The correlation (Pearson and Spearman, bootstrap CIs over pairs) is `csr_core.languages.correlate`, the one used
for per-language gaps. Pairs sharing a language are not independent, so its p-values and CIs are optimistic; the
Mantel test (`mantel_test`) gives the p-value that respects this, by permuting language labels instead of pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from csr_core.errors import DataError
from csr_core.languages import CorrelationResult, correlate, uriel_distance, uriel_source
from csr_core.metrics import hits_at_k
from csr_core.stats import bootstrap_ci, reliability_note

DIRECTED_COLUMNS = ["query_lang", "doc_lang", "value", "ci_low", "ci_high", "n", "note"]
PAIR_COLUMNS = ["pair", "lang_a", "lang_b", "a_to_b", "b_to_a", "score", "ci_low", "ci_high", "gap", "gap_ci_low",
                "gap_ci_high", "distance", "n", "note"]


def pair_label(a: str, b: str) -> str:
    """The name of a pair in tables and on charts: ``de–fr`` (en dash)."""
    return f"{a}–{b}"


def _pair_order(a: str, b: str) -> tuple[str, str]:
    """English first, then alphabetical (``en–de``, ``de–fr``), whatever order the run stored them in."""
    first, second = sorted((a, b), key=lambda code: (code.split("-", 1)[0] != "en", code))
    return first, second


def _cross_hits(ranks: pd.DataFrame, k: int) -> dict[tuple[str, str], pd.Series]:
    """hit@K (0/1 floats) by query id for each ordered pair of the plain (not code-switched) t2t cross ranks."""
    if ranks.empty:
        return {}
    mask = (ranks["setting"] == "cross") & (ranks["direction"] == "t2t") & (ranks["cs_mode"].fillna("") == "")
    out: dict[tuple[str, str], pd.Series] = {}
    for (query_lang, doc_lang), frame in ranks[mask].groupby(["query_lang", "doc_lang"], sort=True):
        by_id = frame.set_index("query_id")["rank"]
        if by_id.index.duplicated().any():
            raise DataError(f"cross ranks {query_lang}→{doc_lang}: query id {by_id.index[by_id.index.duplicated()][0]!r}"
                            " appears twice; one rank per query is expected")
        # sorted by query id: scores, CIs and gaps must not depend on the order the ranks were stored in
        out[(str(query_lang), str(doc_lang))] = pd.Series(hits_at_k(by_id.to_numpy(), k).astype(float),
                                                          index=by_id.index).sort_index()
    return out


def directed_recall(ranks: pd.DataFrame, *, k: int = 10, seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """R@K (percent) with a bootstrap CI per ordered pair X→Y of a cross run: ``DIRECTED_COLUMNS``."""
    return _directed(_cross_hits(ranks, k), seed, n_resamples)


def _directed(by_pair: dict[tuple[str, str], pd.Series], seed: int, n_resamples: int) -> pd.DataFrame:
    records = []
    for (query_lang, doc_lang), hits in by_pair.items():
        low, high = bootstrap_ci(hits.to_numpy(), seed=seed, n_resamples=n_resamples)
        records.append({"query_lang": query_lang, "doc_lang": doc_lang, "value": 100.0 * float(hits.mean()),
                        "ci_low": low, "ci_high": high, "n": len(hits), "note": reliability_note(len(hits))})
    return pd.DataFrame(records, columns=DIRECTED_COLUMNS)


@dataclass(frozen=True)
class PairAnalysis:
    """One cross run's pairs: directed R@K, symmetric scores with distances, and score vs distance correlation."""

    directed: pd.DataFrame  # DIRECTED_COLUMNS
    pairs: pd.DataFrame  # PAIR_COLUMNS, one row per unordered pair, every pair of the run (none dropped)
    correlation: CorrelationResult  # pair score vs distance
    missing: dict[str, str]  # pair label -> why it has no URIEL distance
    k: int
    kind: str
    mantel: "MantelResult"  # Spearman of score with distance, p-value from permuted language labels


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def analyse_pairs(ranks: pd.DataFrame, *, k: int = 10, kind: str = "genetic", seed: int = 0,
                  n_resamples: int = 1000) -> PairAnalysis:
    """Directed R@K, pair scores, gaps to the best pair and URIEL distances of a cross run, and the correlation of
    pair score with distance (module docstring has the definitions). DataError when the ranks hold no cross pair."""
    hits = _cross_hits(ranks, k)
    if not hits:
        raise DataError("these ranks hold no cross-lingual (setting 'cross', t2t) queries: run an evaluation with the "
                        "'cross' setting on two or more aligned languages")
    directed = _directed(hits, seed, n_resamples)
    records: list[dict] = []
    items: dict[str, pd.Series] = {}  # pair label -> per-item symmetric hit in points
    missing: dict[str, str] = {}
    for a, b in sorted({_pair_order(q, d) for q, d in hits}, key=lambda p: (p[0].split("-")[0] != "en", p)):
        label = pair_label(a, b)
        ab, ba = hits.get((a, b)), hits.get((b, a))
        record: dict = {"pair": label, "lang_a": a, "lang_b": b, "a_to_b": math.nan, "b_to_a": math.nan,
                        "score": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n": 0}
        notes: list[str] = []
        if ab is not None:
            record["a_to_b"] = 100.0 * float(ab.mean())
        if ba is not None:
            record["b_to_a"] = 100.0 * float(ba.mean())
        if ab is None or ba is None:
            have, lack = (f"{a}→{b}", f"{b}→{a}") if ab is not None else (f"{b}→{a}", f"{a}→{b}")
            notes.append(f"only {have} was run (no {lack}): no symmetric score")
        else:
            shared = ab.index.intersection(ba.index)
            if len(shared):
                per_item = 50.0 * (ab.loc[shared] + ba.loc[shared])
                items[label] = per_item
                record["score"] = float(per_item.mean())
                record["ci_low"], record["ci_high"] = bootstrap_ci(per_item.to_numpy(), seed=seed,
                                                                   n_resamples=n_resamples)
            record["n"] = len(shared)
            if len(shared) < max(len(ab), len(ba)):
                notes.append(f"scored on the {len(shared)} items both directions rank")
            notes.append(reliability_note(len(shared)))
        try:
            record["distance"] = uriel_distance(a, b, kind)
        except DataError as error:
            record["distance"] = math.nan
            missing[label] = str(error)
            notes.append(f"no URIEL {kind} distance ({error})")
        record["note"] = _join(*notes)
        records.append(record)
    pairs = pd.DataFrame(records)
    _add_gaps(pairs, items, seed, n_resamples)
    pairs = pairs[PAIR_COLUMNS]
    return PairAnalysis(directed, pairs, _correlation(pairs, kind, seed, n_resamples), missing, k, kind,
                        mantel_test(pairs, seed=seed))


def _add_gaps(pairs: pd.DataFrame, items: dict[str, pd.Series], seed: int, n_resamples: int) -> None:
    """gap = S(best) − S(pair), its CI paired on the items both pairs rank (NaN CI where they rank different ones)."""
    best = max(items, key=lambda label: float(items[label].mean())) if items else ""
    gaps, lows, highs, notes = [], [], [], []
    for label, note in zip(pairs["pair"], pairs["note"]):
        low = high = gap = math.nan
        if label in items:
            gap = float(items[best].mean()) - float(items[label].mean())
            if items[label].index.sort_values().equals(items[best].index.sort_values()):
                low, high = bootstrap_ci((items[best] - items[label]).sort_index().to_numpy(), seed=seed,
                                         n_resamples=n_resamples)
            else:
                note = _join(note, f"gap CI undefined: {label} and the best pair {best} rank different items")
        gaps.append(gap)
        lows.append(low)
        highs.append(high)
        notes.append(note)
    pairs["gap"], pairs["gap_ci_low"], pairs["gap_ci_high"], pairs["note"] = gaps, lows, highs, notes


def _correlation(pairs: pd.DataFrame, kind: str, seed: int, n_resamples: int) -> CorrelationResult:
    usable = pairs["score"].notna() & pairs["distance"].notna()
    dropped = [f"{p} (no score)" for p in pairs.loc[pairs["score"].isna(), "pair"]]
    dropped += [f"{p} (no URIEL {kind} data)" for p in pairs.loc[pairs["score"].notna() & pairs["distance"].isna(),
                                                                "pair"]]
    notes = [f"pair score vs {kind} distance between the two languages ({uriel_source()})",
             "pairs sharing a language are not independent: p-values and CIs are optimistic"]
    if dropped:
        notes.append("left out: " + ", ".join(dropped))
    part = pairs[usable]
    return correlate(part["distance"].to_numpy(dtype=float), part["score"].to_numpy(dtype=float),
                     [str(p) for p in part["pair"]], kind=kind, notes=notes, unit="pair", value="score", seed=seed,
                     n_resamples=n_resamples)



@dataclass(frozen=True)
class MantelResult:
    """Spearman ρ between pair scores and pair distances, with a two-sided Mantel permutation p-value."""

    rho: float
    p_value: float
    n_languages: int
    permutations: int
    note: str


def mantel_test(pairs: pd.DataFrame, *, value: str = "score", seed: int = 0,
                n_permutations: int = 9999) -> MantelResult:
    """Mantel test of pair `value` against pair distance (Spearman ρ on the upper triangles).

    The null permutes the languages' labels on the score matrix (rows and columns together), so every pair that
    shares a language moves with it: the dependence between such pairs, which a test over pairs ignores, is kept.
    Needs the full matrix: every pair of the languages with a value and a distance; NaN with a note otherwise.
    """
    from scipy.stats import rankdata

    usable = pairs[pairs[value].notna() & pairs["distance"].notna()]
    langs = sorted(set(usable["lang_a"]) | set(usable["lang_b"]))
    n = len(langs)
    nan = math.nan
    if n < 4:
        return MantelResult(nan, nan, n, 0, f"a Mantel test needs at least 4 languages, have {n}")
    if len(usable) != n * (n - 1) // 2:
        return MantelResult(nan, nan, n, 0, f"a Mantel test needs every pair of the {n} languages with a {value} and a "
                            f"distance; {n * (n - 1) // 2 - len(usable)} are missing")
    index = {lang: i for i, lang in enumerate(langs)}
    scores = np.zeros((n, n))
    distances = np.zeros((n, n))
    for a, b, v, d in zip(usable["lang_a"], usable["lang_b"], usable[value], usable["distance"]):
        i, j = index[a], index[b]
        scores[i, j] = scores[j, i] = float(v)
        distances[i, j] = distances[j, i] = float(d)
    upper = np.triu_indices(n, 1)
    d_ranks = rankdata(distances[upper])
    d_centred = d_ranks - d_ranks.mean()
    if not np.any(d_centred) or np.ptp(scores[upper]) == 0:
        return MantelResult(nan, nan, n, 0, f"all {'distances' if not np.any(d_centred) else value + 's'} are equal")

    def rho(score_rows: np.ndarray) -> np.ndarray:
        ranks = rankdata(score_rows, axis=-1)
        centred = ranks - ranks.mean(axis=-1, keepdims=True)
        return (centred @ d_centred) / np.sqrt((centred ** 2).sum(axis=-1) * (d_centred ** 2).sum())

    observed = float(rho(scores[upper][None, :])[0])
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((int(n_permutations), n)), axis=1)
    permuted = scores[perms[:, upper[0]], perms[:, upper[1]]]
    null = rho(permuted)
    extreme = int(np.sum(np.abs(null) >= abs(observed) - 1e-12))
    p_value = (extreme + 1) / (int(n_permutations) + 1)
    return MantelResult(observed, p_value, n, int(n_permutations),
                        f"Mantel test over {n} languages: {n_permutations} permutations of the language labels "
                        f"(seed {seed}), two-sided")
