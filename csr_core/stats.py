"""Uncertainty for retrieval numbers: bootstrap CIs, paired tests between two systems, multiple-test correction.

Inputs are per-query vectors on the same queries (``metrics.hits_at_k``). Binary (hit/miss) vectors are reported in
percent / percentage points, like R@K; any other per-query values (e.g. reciprocal ranks) in their own units.
All randomness comes from ``np.random.default_rng(seed)``: the same seed gives the same interval / p-value.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from csr_core.errors import DataError


@functools.lru_cache(maxsize=1)
def _st():
    """scipy.stats, imported on first use: importing it costs ~1.5 s, and pages that only show stored results
    (the dashboard's first request) import this module for its types."""
    from scipy import stats

    return stats


@functools.lru_cache(maxsize=1)
def _special():
    """scipy.special (t and normal distribution functions): a tenth of scipy.stats' import, enough for the Wald,
    TOST and MDE formulas every evaluation row needs."""
    from scipy import special

    return special

MIN_QUERIES_FOR_STATS = 30
_BATCH_BYTES = 64 * 2**20  # resample batches stay around this size, whatever the query count


def reliability_note(n_queries: int) -> str:
    """"" when there are enough queries for R@K to mean something, else a short warning for rows and the UI."""
    if n_queries < MIN_QUERIES_FOR_STATS:
        return (f"only {n_queries} queries: R@K is not statistically meaningful "
                f"(need at least {MIN_QUERIES_FOR_STATS})")
    return ""


def _vector(x, name: str) -> tuple[np.ndarray, bool]:
    """(float values, is_binary); rejects empty, non-1-D and non-finite input."""
    arr = np.asarray(x)
    if arr.ndim != 1 or len(arr) == 0:
        raise DataError(f"{name}: expected a non-empty 1-D per-query vector, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected booleans or numbers, got dtype {arr.dtype}")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{name}: position {int(np.flatnonzero(~np.isfinite(values))[0])} is NaN or inf")
    binary = bool(np.isin(values, (0.0, 1.0)).all())
    return values, binary


def _batch(n: int) -> int:
    return max(1, _BATCH_BYTES // (8 * n))


def _mean(x, axis=-1):
    return np.mean(x, axis=axis)


def bootstrap_ci(hits, seed: int = 0, n_resamples: int = 2000, level: float = 0.95,
                 method: str = "percentile") -> tuple[float, float]:
    """Seeded bootstrap CI of the mean (percent for hit vectors).

    Percentile by default: BCa's jackknife is O(n^2) on 25k queries. A constant vector (all hits or all misses)
    has a zero-width interval at its value instead of scipy's NaN.
    """
    values, binary = _vector(hits, "hits")
    if not 0 < level < 1:
        raise DataError(f"level must be in (0, 1), got {level}")
    if method not in ("percentile", "basic", "BCa"):
        raise DataError(f"method must be 'percentile', 'basic' or 'BCa', got {method!r}")
    scale = 100.0 if binary else 1.0
    if np.all(values == values[0]):
        return scale * float(values[0]), scale * float(values[0])
    res = _st().bootstrap((values,), _mean, n_resamples=int(n_resamples), confidence_level=level, method=method,
                        vectorized=True, batch=_batch(len(values)), rng=np.random.default_rng(seed))
    low, high = res.confidence_interval
    return scale * float(low), scale * float(high)


@dataclass(frozen=True)
class PairedTestResult:
    """a - b on the same queries: ``diff`` in percentage points for hit vectors, ``p_value`` two-sided."""

    diff: float
    p_value: float
    method: str
    n: int


def paired_test(hits_a, hits_b, method: str = "mcnemar", seed: int = 0, n_resamples: int = 9999) -> PairedTestResult:
    """Does system a differ from b on the same queries? Exact McNemar (binary only) or paired permutation test.

    McNemar: two-sided exact binomial test on the discordant pairs (a hit/b miss vs a miss/b hit).
    Permutation: randomly swaps a and b within each query (``permutation_type="samples"``); exact when
    2**(number of queries where a != b) <= n_resamples.
    """
    a, a_bin = _vector(hits_a, "hits_a")
    b, b_bin = _vector(hits_b, "hits_b")
    if len(a) != len(b):
        raise DataError(f"paired_test: hits_a has {len(a)} queries but hits_b has {len(b)}; a paired test needs "
                        "the same queries in the same order")
    binary = a_bin and b_bin
    diff = (100.0 if binary else 1.0) * float(np.mean(a) - np.mean(b))
    if method == "mcnemar":
        if not binary:
            raise DataError("paired_test: McNemar needs hit/miss (0/1) vectors; use method='permutation' for values")
        only_a = int(np.sum((a == 1) & (b == 0)))
        only_b = int(np.sum((a == 0) & (b == 1)))
        p = 1.0 if only_a + only_b == 0 else float(_st().binomtest(only_a, only_a + only_b, 0.5).pvalue)
    elif method == "permutation":
        # Queries where a == b add the same to every permuted statistic, so dropping them leaves the p-value
        # unchanged (the statistic is only rescaled) and makes the test cheaper, and exact more often.
        differ = a != b
        if int(differ.sum()) < 2:
            # exact: with at most one differing query every sign flip gives the same |statistic| (and scipy's
            # permutation_test refuses a single observation)
            p = 1.0
        else:
            da, db = a[differ], b[differ]
            res = _st().permutation_test((da, db), _mean_diff, permutation_type="samples", vectorized=True,
                                       n_resamples=int(n_resamples), batch=_batch(len(da)),
                                       alternative="two-sided", rng=np.random.default_rng(seed))
            p = float(res.pvalue)
    else:
        raise DataError(f"paired_test: method must be 'mcnemar' or 'permutation', got {method!r}")
    return PairedTestResult(diff=diff, p_value=min(1.0, p), method=method, n=len(a))


def _mean_diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Family-wise correction across e.g. languages: 'holm' (default, uniformly more powerful) or 'bonferroni'.

    Holm's step-down, as statsmodels' ``multipletests`` computes it (tested equal): sorted p times (m - i), running
    maximum, capped at 1. Not delegated: ``multipletests(method="holm")`` runs ``gc.collect()`` on every call, which
    costs ~0.3 s in a dashboard process with a large heap, and the dashboard adjusts a family per comparison.
    """
    if method not in ("holm", "bonferroni"):
        raise DataError(f"adjust_pvalues: method must be 'holm' or 'bonferroni', got {method!r}")
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1) if np.size(pvalues) else np.empty(0)
    if len(p) == 0:
        return p
    bad = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
    if len(bad):
        raise DataError(f"adjust_pvalues: p-value #{int(bad[0])} = {p[bad[0]]} is not in [0, 1]")
    m = len(p)
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(np.maximum.accumulate(p[order] * np.arange(m, 0, -1)), 1.0)
    out = np.empty(m)
    out[order] = stepped
    return out


def adjust_tested(pvalues, method: str = "holm") -> np.ndarray:
    """`adjust_pvalues` over the family of tests that were run: NaN (no test possible) stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1) if np.size(pvalues) else np.empty(0)
    out = np.full(len(p), np.nan)
    tested = np.isfinite(p)
    if tested.any():
        out[tested] = adjust_pvalues(p[tested], method=method)
    return out


# ---- clustered and two-level inference ------------------------------------------------------------------------------
#
# Queries are not independent: the five captions of a photo, the languages of one photo in a multilingual gallery and
# the seeds of one arm share a cluster. The functions below resample (or sign-flip) whole photos, and, given a
# queries x seeds matrix, seeds too. Statistics are means over queries (ratio estimator: the clusters' sums over their
# query counts), so a photo with more queries weighs more, exactly as in the plain R@K.


def _clusters(clusters, n: int, name: str = "clusters") -> tuple[np.ndarray, int]:
    """(cluster index per query, number of clusters) from any hashable labels, in first-seen order."""
    labels = np.asarray(clusters)
    if labels.ndim != 1 or len(labels) != n:
        raise DataError(f"{name}: expected one cluster label per query ({n}), got shape {labels.shape}")
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))  # relabel in first-seen order (results do not depend on label sorting)
    return order[inverse].astype(np.int64), len(first)


def _cluster_sums(values: np.ndarray, index: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster sums of `values` (last axis = queries; leading axes kept) and per-cluster query counts."""
    counts = np.bincount(index, minlength=n_clusters).astype(np.float64)
    flat = values.reshape(-1, values.shape[-1])
    sums = np.stack([np.bincount(index, weights=row, minlength=n_clusters) for row in flat])
    return sums.reshape(values.shape[:-1] + (n_clusters,)), counts


def _resample_weights(rng: np.random.Generator, n_resamples: int, n_units: int) -> np.ndarray:
    """(n_resamples, n_units) multiplicities of a with-replacement resample of `n_units` units."""
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_resamples).astype(np.float64)


def _percentile_ci(draws: np.ndarray, level: float) -> tuple[float, float]:
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(draws, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class Estimate:
    """A mean (or mean difference) with its resampling distribution's summary, in percent / points for hit vectors.

    `p_value` tests "the true value is 0" (two-sided t = value / se on clusters - 1 degrees of freedom, `se` the
    resampling standard error; the interval is the percentile interval), `n_clusters` / `n_seeds` say what was resampled."""

    value: float
    low: float
    high: float
    se: float
    p_value: float
    n_queries: int
    n_clusters: int
    n_seeds: int
    method: str

    def mde(self, alpha: float = 0.05, power: float = 0.8) -> float:
        """The minimum detectable effect at this precision (`minimum_detectable_effect`)."""
        return minimum_detectable_effect(self.se, alpha=alpha, power=power)


def _wald_p(value: float, se: float, df: int) -> float:
    """Two-sided p for "value = 0" from the bootstrap standard error: t = value / se on `df` (clusters - 1) degrees of
    freedom. The bootstrap's tail count cannot go below 1 / n_resamples, which a Holm family of ~100 tests would turn
    into p >= 0.1 for any effect."""
    if se > 0:
        return float(min(1.0, 2.0 * _special().stdtr(max(1, df), -abs(value) / se)))
    return 1.0 if value == 0 else 0.0


def _matrix(values, name: str) -> tuple[np.ndarray, bool]:
    """(seeds x queries float matrix, is_binary) from a 1-D vector (one seed) or a queries x seeds matrix."""
    arr = np.asarray(values)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name}: expected a per-query vector or a queries x seeds matrix, got shape {arr.shape}")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name}: expected booleans or numbers, got dtype {arr.dtype}")
    out = arr.astype(np.float64).T
    if not np.isfinite(out).all():
        raise DataError(f"{name}: holds NaN or inf")
    return out, bool(np.isin(out, (0.0, 1.0)).all())


def cluster_bootstrap(values, clusters, *, seed: int = 0, n_resamples: int = 2000, level: float = 0.95,
                      resample_seeds: bool = True, scale: float | None = None) -> Estimate:
    """Mean of per-query `values` with a two-level bootstrap: photos (clusters) and, for a queries x seeds matrix,
    seeds (the arm's training runs) -- each resample draws seeds with replacement, then photos with replacement.

    `values` may be a difference (arm - baseline, seed s paired with seed s). Hit vectors (0/1) report percent; pass
    `scale` to override (differences of hits are not 0/1: give scale=100).
    """
    mat, binary = _matrix(values, "values")
    if not 0 < level < 1:
        raise DataError(f"level must be in (0, 1), got {level}")
    n_seeds, n = mat.shape
    index, n_clusters = _clusters(clusters, n)
    factor = scale if scale is not None else (100.0 if binary else 1.0)
    sums, counts = _cluster_sums(mat, index, n_clusters)  # (seeds, clusters), (clusters,)
    rng = np.random.default_rng(seed)
    draws = np.empty(int(n_resamples))
    batch = max(1, _BATCH_BYTES // (8 * max(n_clusters, n_seeds) * 2))
    for lo in range(0, len(draws), batch):
        b = min(batch, len(draws) - lo)
        w_photo = _resample_weights(rng, b, n_clusters)  # (b, clusters)
        if n_seeds > 1 and resample_seeds:
            w_seed = _resample_weights(rng, b, n_seeds) / n_seeds  # (b, seeds)
        else:
            w_seed = np.full((b, n_seeds), 1.0 / n_seeds)
        seed_mix = w_seed @ sums  # (b, clusters): seed-weighted cluster sums
        draws[lo:lo + b] = np.einsum("bc,bc->b", w_photo, seed_mix) / (w_photo @ counts)
    value = float(mat.mean())
    low, high = _percentile_ci(draws, level)
    method = "two-level bootstrap (seeds, photos)" if n_seeds > 1 and resample_seeds else "photo bootstrap"
    se = float(draws.std(ddof=1))
    return Estimate(factor * value, factor * low, factor * high, factor * se, _wald_p(value, se, n_clusters - 1), n,
                    n_clusters, n_seeds, method)


def paired_difference(a, b, clusters, *, seed: int = 0, n_resamples: int = 2000, level: float = 0.95) -> Estimate:
    """a - b on the same queries (per-query vectors or queries x seeds matrices, seed s with seed s), with the
    two-level bootstrap of `cluster_bootstrap`; points for hit vectors."""
    ma, a_bin = _matrix(a, "a")
    mb, b_bin = _matrix(b, "b")
    if ma.shape != mb.shape:
        raise DataError(f"paired_difference: a is {ma.shape[::-1]} (queries x seeds) but b is {mb.shape[::-1]}; "
                        "pair the same queries and seeds")
    return cluster_bootstrap((ma - mb).T, clusters, seed=seed, n_resamples=n_resamples, level=level,
                             scale=100.0 if a_bin and b_bin else 1.0)


def cluster_permutation_test(a, b, clusters, *, seed: int = 0, n_resamples: int = 9999) -> PairedTestResult:
    """Paired permutation test with photos as the exchangeable units: a and b swap for all queries of a photo at
    once (sign flips of per-photo difference sums). Exact when 2**photos <= n_resamples. Seeds (columns) are averaged
    first: the test conditions on the trained models; `paired_difference` carries seed variance."""
    ma, a_bin = _matrix(a, "a")
    mb, b_bin = _matrix(b, "b")
    if ma.shape != mb.shape:
        raise DataError(f"cluster_permutation_test: a is {ma.shape[::-1]} but b is {mb.shape[::-1]}")
    d = (ma - mb).mean(axis=0)
    index, n_clusters = _clusters(clusters, len(d))
    sums, _ = _cluster_sums(d[None, :], index, n_clusters)
    sums = sums[0]
    observed = abs(sums.sum())
    live = sums[sums != 0]
    factor = 100.0 if a_bin and b_bin else 1.0
    diff = factor * float(d.mean())
    if len(live) == 0:
        return PairedTestResult(diff, 1.0, "cluster permutation", n_clusters)
    tol = 1e-9 * max(1.0, observed)
    if 2 ** len(live) <= n_resamples:
        signs = ((np.arange(2 ** len(live))[:, None] >> np.arange(len(live))) & 1) * 2.0 - 1.0
        stats_ = np.abs(signs @ live)
        p = float(np.mean(stats_ >= observed - tol))
    else:
        rng = np.random.default_rng(seed)
        count = 0
        batch = max(1, _BATCH_BYTES // (8 * len(live)))
        for lo in range(0, int(n_resamples), batch):
            m = min(batch, int(n_resamples) - lo)
            signs = rng.integers(0, 2, size=(m, len(live))) * 2.0 - 1.0
            count += int(np.sum(np.abs(signs @ live) >= observed - tol))
        p = (count + 1.0) / (n_resamples + 1.0)
    return PairedTestResult(diff, min(1.0, p), "cluster permutation", n_clusters)


def equivalence_test(estimate: Estimate, margin: float, draws_level: float = 0.90) -> dict:
    """TOST for "|true value| < margin" from a resampling estimate: equivalent at alpha = (1 - draws_level) / 2 when
    the `draws_level` interval lies inside (-margin, +margin). Returns the verdict, the interval and the TOST p-value
    (the larger of the two one-sided p-values, normal approximation with the resampling se)."""
    if not margin > 0:
        raise DataError(f"equivalence margin must be positive, got {margin}")
    z = _special().ndtri(0.5 + draws_level / 2.0)
    low, high = estimate.value - z * estimate.se, estimate.value + z * estimate.se
    if estimate.se > 0:
        p_lower = float(_special().ndtr(-(estimate.value + margin) / estimate.se))  # H0: value <= -margin
        p_upper = float(_special().ndtr((estimate.value - margin) / estimate.se))  # H0: value >= +margin
        p = max(p_lower, p_upper)
    else:
        p = 0.0 if abs(estimate.value) < margin else 1.0
    return {"equivalent": bool(-margin < low and high < margin), "low": low, "high": high, "margin": margin,
            "p_value": p, "alpha": (1.0 - draws_level) / 2.0}


def minimum_detectable_effect(se: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true effect a two-sided test at `alpha` detects with probability `power`, given the standard error
    of the estimate: (z_{1-alpha/2} + z_power) * se (2.80 se at the defaults)."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise DataError(f"alpha and power must be in (0, 1), got {alpha}, {power}")
    if not se >= 0:
        raise DataError(f"standard error must be >= 0, got {se}")
    return float((_special().ndtri(1.0 - alpha / 2.0) + _special().ndtri(power)) * se)


def gap_closure(arm_x: float, base_x: float, base_en: float, min_gap: float = 2.0) -> float:
    """Share of the baseline's gap to English an arm closes in language X: (arm_X - base_X) / (base_en - base_X).
    1 = the gap is gone, 0 = no change, < 0 = wider. NaN when the baseline gap is under `min_gap` points (a ratio
    of two small numbers says nothing)."""
    gap = base_en - base_x
    if not all(map(np.isfinite, (arm_x, base_x, base_en))) or gap < min_gap:
        return float("nan")
    return float((arm_x - base_x) / gap)
