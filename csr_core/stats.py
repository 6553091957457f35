"""Uncertainty for retrieval numbers: bootstrap CIs, paired tests between two systems, multiple-test correction.

Inputs are per-query vectors on the same queries (``metrics.hits_at_k``). Binary (hit/miss) vectors are reported in
percent / percentage points, like R@K; any other per-query values (e.g. reciprocal ranks) in their own units.
All randomness comes from ``np.random.default_rng(seed)``: the same seed gives the same interval / p-value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from csr_core.errors import DataError

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
    res = _st.bootstrap((values,), _mean, n_resamples=int(n_resamples), confidence_level=level, method=method,
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
        p = 1.0 if only_a + only_b == 0 else float(_st.binomtest(only_a, only_a + only_b, 0.5).pvalue)
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
            res = _st.permutation_test((da, db), _mean_diff, permutation_type="samples", vectorized=True,
                                       n_resamples=int(n_resamples), batch=_batch(len(da)),
                                       alternative="two-sided", rng=np.random.default_rng(seed))
            p = float(res.pvalue)
    else:
        raise DataError(f"paired_test: method must be 'mcnemar' or 'permutation', got {method!r}")
    return PairedTestResult(diff=diff, p_value=min(1.0, p), method=method, n=len(a))


def _mean_diff(x, y, axis=-1):
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Family-wise correction across e.g. languages: 'holm' (default, uniformly more powerful) or 'bonferroni'."""
    from statsmodels.stats.multitest import multipletests

    if method not in ("holm", "bonferroni"):
        raise DataError(f"adjust_pvalues: method must be 'holm' or 'bonferroni', got {method!r}")
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1) if np.size(pvalues) else np.empty(0)
    if len(p) == 0:
        return p
    bad = np.flatnonzero(~np.isfinite(p) | (p < 0) | (p > 1))
    if len(bad):
        raise DataError(f"adjust_pvalues: p-value #{int(bad[0])} = {p[bad[0]]} is not in [0, 1]")
    return np.asarray(multipletests(p, method=method)[1], dtype=np.float64)


def adjust_tested(pvalues, method: str = "holm") -> np.ndarray:
    """`adjust_pvalues` over the family of tests that were run: NaN (no test possible) stays NaN and is not counted."""
    p = np.asarray(pvalues, dtype=np.float64).reshape(-1) if np.size(pvalues) else np.empty(0)
    out = np.full(len(p), np.nan)
    tested = np.isfinite(p)
    if tested.any():
        out[tested] = adjust_pvalues(p[tested], method=method)
    return out
