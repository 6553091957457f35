"""Bootstrap CIs, paired tests and multiple-test correction checked against answers known by hand."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from csr_core import stats as S
from csr_core.errors import DataError


def _hits(rng, n, p):
    return rng.random(n) < p


# ---------------------------------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------------------------------
def test_bootstrap_ci_contains_the_mean_is_seeded_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = _hits(rng, 100, 0.4), _hits(rng, 5000, 0.4)
    low, high = S.bootstrap_ci(small, seed=1)
    assert low < 100 * small.mean() < high
    assert 0 <= low and high <= 100
    assert S.bootstrap_ci(small, seed=1) == (low, high)
    assert S.bootstrap_ci(small, seed=2) != (low, high)
    l2, h2 = S.bootstrap_ci(large, seed=1)
    assert l2 < 100 * large.mean() < h2
    assert (h2 - l2) < (high - low) / 4  # width ~ 1/sqrt(n): 50x the queries -> ~7x narrower
    # the normal-approximation half-width of a proportion, in percent: the bootstrap must be close to it
    p = large.mean()
    assert (h2 - l2) / 2 == pytest.approx(1.96 * 100 * np.sqrt(p * (1 - p) / len(large)), rel=0.15)
    l90, h90 = S.bootstrap_ci(large, seed=1, level=0.90)
    assert l2 <= l90 and h90 <= h2


def test_bootstrap_ci_degenerate_and_value_inputs():
    assert S.bootstrap_ci(np.ones(40, dtype=bool)) == (100.0, 100.0)
    assert S.bootstrap_ci(np.zeros(40, dtype=bool)) == (0.0, 0.0)
    assert S.bootstrap_ci(np.zeros(1, dtype=bool)) == (0.0, 0.0)
    low, high = S.bootstrap_ci(np.array([0.2, 0.5, 0.9, 0.4, 0.7] * 10))  # non-binary: own units, not percent
    assert 0.2 < low < 0.54 < high < 0.9
    low, high = S.bootstrap_ci(np.array([1, 0] * 20, dtype=bool), method="BCa")
    assert low < 50 < high
    with pytest.raises(DataError):
        S.bootstrap_ci([])
    with pytest.raises(DataError, match="NaN"):
        S.bootstrap_ci([0.1, float("nan")])
    with pytest.raises(DataError, match="level"):
        S.bootstrap_ci([0, 1, 1], level=95)


# ---------------------------------------------------------------------------------------------------------------
# paired tests
# ---------------------------------------------------------------------------------------------------------------
def _table(n11, n10, n01, n00):
    a = np.array([1] * n11 + [1] * n10 + [0] * n01 + [0] * n00, dtype=bool)
    b = np.array([1] * n11 + [0] * n10 + [1] * n01 + [0] * n00, dtype=bool)
    return a, b


def test_mcnemar_exact_p_equals_the_hand_binomial():
    a, b = _table(n11=40, n10=10, n01=3, n00=47)
    res = S.paired_test(a, b, method="mcnemar")
    hand = 2 * sum(comb(13, k) for k in range(0, 4)) / 2**13  # two-sided exact binomial on 13 discordant pairs
    assert res.p_value == pytest.approx(hand, rel=1e-12)
    assert res.diff == pytest.approx(7.0)  # (50 - 43) / 100 in percentage points
    assert (res.method, res.n) == ("mcnemar", 100)
    flipped = S.paired_test(b, a, method="mcnemar")
    assert flipped.p_value == pytest.approx(hand) and flipped.diff == pytest.approx(-7.0)
    same = S.paired_test(a, a)
    assert same.p_value == 1.0 and same.diff == 0.0


def test_permutation_test_exact_small_case_and_agreement_with_mcnemar():
    a = np.array([1, 1, 1, 1, 0, 1, 0], dtype=bool)
    b = np.array([0, 0, 0, 0, 0, 1, 0], dtype=bool)
    # 4 discordant pairs all favour a: sign-flip distribution is exact, P(|stat| >= obs) = 2 / 2**4
    perm = S.paired_test(a, b, method="permutation", seed=3)
    assert perm.p_value == pytest.approx(0.125)
    assert S.paired_test(a, b, method="mcnemar").p_value == pytest.approx(0.125)
    assert perm.diff == pytest.approx(400 / 7)

    order = np.random.default_rng(4).permutation(400)
    x, y = (v[order] for v in _table(n11=150, n10=25, n01=5, n00=220))  # a wins 25 queries, loses 5
    p_perm = S.paired_test(x, y, method="permutation", seed=0, n_resamples=4999).p_value
    p_mc = S.paired_test(x, y, method="mcnemar").p_value
    assert p_perm < 0.05 and p_mc < 0.05
    assert p_perm == pytest.approx(p_mc, abs=0.01)  # same null (random swap within pairs)
    assert S.paired_test(x, y, method="permutation", seed=0, n_resamples=4999).p_value == p_perm


def test_permutation_on_values_and_errors():
    rng = np.random.default_rng(5)
    a = rng.random(60)
    res = S.paired_test(a + 0.5, a, method="permutation")
    assert res.p_value < 0.01 and res.diff == pytest.approx(0.5)  # non-binary values: own units
    with pytest.raises(DataError, match="same queries"):
        S.paired_test(np.ones(5, bool), np.ones(6, bool))
    with pytest.raises(DataError, match="McNemar"):
        S.paired_test(a, a + 0.1, method="mcnemar")
    with pytest.raises(DataError, match="method"):
        S.paired_test(a, a, method="t-test")


# ---------------------------------------------------------------------------------------------------------------
# multiple testing, reliability
# ---------------------------------------------------------------------------------------------------------------
def test_holm_and_bonferroni_known_vectors():
    p = [0.01, 0.04, 0.03, 0.2]
    # Holm by hand: sorted 0.01*4=0.04, 0.03*3=0.09, 0.04*2=0.08 -> running max 0.09, 0.2*1=0.2
    np.testing.assert_allclose(S.adjust_pvalues(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(S.adjust_pvalues(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    np.testing.assert_allclose(S.adjust_pvalues([0.5, 0.3], "bonferroni"), [1.0, 0.6])
    rng = np.random.default_rng(1)
    for trial in range(200):  # statsmodels is the reference, ties and p = 0 / 1 included
        q = rng.random(int(rng.integers(1, 40))) ** 3
        if trial % 3 == 0:
            q = np.round(q, 1)  # many ties
        for method in ("holm", "bonferroni"):
            np.testing.assert_allclose(S.adjust_pvalues(q, method), multipletests(q, method=method)[1],
                                       rtol=0, atol=1e-15)
    assert len(S.adjust_pvalues([])) == 0
    with pytest.raises(DataError, match="#1"):
        S.adjust_pvalues([0.1, 1.5])
    with pytest.raises(DataError, match="method"):
        S.adjust_pvalues([0.1], "fdr_bh")


def test_reliability_note():
    assert S.MIN_QUERIES_FOR_STATS == 30
    assert S.reliability_note(30) == "" and S.reliability_note(5000) == ""
    note = S.reliability_note(12)
    assert "only 12 queries" in note and "not statistically meaningful" in note


def test_adjust_tested_corrects_only_the_tests_that_ran():
    """Holm over the finite p-values only (NaN = no test possible stays NaN and does not enlarge the family)."""
    import math

    from csr_core.stats import adjust_pvalues, adjust_tested

    got = adjust_tested([0.01, float("nan"), 0.04, 0.03])
    assert math.isnan(got[1])
    # Holm by hand over the three tests: sorted 0.01, 0.03, 0.04 -> 3*0.01, max(.03, 2*0.03), max(.06, 1*0.04)
    assert list(got[[0, 3, 2]]) == pytest.approx([0.03, 0.06, 0.06])
    assert list(adjust_pvalues([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert len(adjust_tested([])) == 0 and math.isnan(adjust_tested([float("nan")])[0])
