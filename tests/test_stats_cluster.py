"""Clustered and two-level inference against cases with known answers (csr_core.stats)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from csr_core.errors import DataError
from csr_core.stats import (
    Estimate,
    cluster_bootstrap,
    cluster_permutation_test,
    equivalence_test,
    gap_closure,
    minimum_detectable_effect,
    paired_difference,
    paired_test,
)


def test_singleton_clusters_give_the_binomial_interval():
    rng = np.random.default_rng(1)
    hits = rng.random(2000) < 0.3
    est = cluster_bootstrap(hits, np.arange(2000), seed=0, n_resamples=4000)
    p = hits.mean()
    half = 100 * 1.96 * math.sqrt(p * (1 - p) / len(hits))
    assert est.value == pytest.approx(100 * p)
    assert est.low == pytest.approx(100 * p - half, abs=0.4) and est.high == pytest.approx(100 * p + half, abs=0.4)
    assert est.n_clusters == 2000 and est.method == "photo bootstrap"


def test_five_identical_captions_per_photo_carry_one_photo_of_information():
    rng = np.random.default_rng(2)
    per_photo = (rng.random(300) < 0.5).astype(float)
    hits = np.repeat(per_photo, 5)  # five captions of a photo, all hit or all miss
    photos = np.repeat(np.arange(300), 5)
    clustered = cluster_bootstrap(hits, photos, seed=0, n_resamples=4000)
    naive = cluster_bootstrap(hits, np.arange(len(hits)), seed=0, n_resamples=4000)
    photo_only = cluster_bootstrap(per_photo, np.arange(300), seed=0, n_resamples=4000)
    assert clustered.se / naive.se == pytest.approx(math.sqrt(5), rel=0.12)  # the naive CI is sqrt(5) too narrow
    assert clustered.se == pytest.approx(photo_only.se, rel=0.1)


def test_seed_resampling_measures_the_spread_between_training_runs():
    seed_means = np.array([0.2, 0.5, 0.3, 0.6, 0.4])
    matrix = np.tile(seed_means, (100, 1))  # 100 queries x 5 seeds; no photo variance at all
    est = cluster_bootstrap(matrix, np.arange(100), seed=0, n_resamples=8000, scale=1.0)
    assert est.value == pytest.approx(seed_means.mean())
    assert est.se == pytest.approx(seed_means.std(ddof=0) / math.sqrt(5), rel=0.08)
    assert est.n_seeds == 5 and "seeds" in est.method
    fixed = cluster_bootstrap(matrix, np.arange(100), seed=0, n_resamples=500, scale=1.0, resample_seeds=False)
    assert fixed.se == pytest.approx(0.0, abs=1e-12)


def test_two_level_bootstrap_covers_the_true_mean_when_seeds_vary():
    rng = np.random.default_rng(3)
    truth, covered, covered_photo_only = 0.0, 0, 0
    for _ in range(60):
        photo = rng.normal(0, 1, 40)
        seed_effect = rng.normal(0, 1.5, 5)
        values = photo[:, None] + seed_effect[None, :] + rng.normal(0, 0.5, (40, 5))
        est = cluster_bootstrap(values, np.arange(40), seed=1, n_resamples=600)
        photo_only = cluster_bootstrap(values, np.arange(40), seed=1, n_resamples=600, resample_seeds=False)
        covered += est.low <= truth <= est.high
        covered_photo_only += photo_only.low <= truth <= photo_only.high
    assert covered >= 48  # >= 80 %: the percentile bootstrap with 5 seeds is a little liberal
    assert covered_photo_only <= covered - 15  # ignoring seeds is badly anti-conservative here


def test_paired_difference_pairs_seed_with_seed_and_reports_points():
    rng = np.random.default_rng(4)
    base = (rng.random((200, 3)) < 0.4).astype(float)
    arm = np.maximum(base, (rng.random((200, 3)) < 0.2))
    photos = np.repeat(np.arange(40), 5)
    est = paired_difference(arm, base, photos, seed=0, n_resamples=2000)
    assert est.value == pytest.approx(100 * (arm.mean() - base.mean()))
    assert est.low < est.value < est.high and est.p_value < 0.01
    with pytest.raises(DataError, match="pair the same queries"):
        paired_difference(arm[:, :2], base, photos)


def test_cluster_permutation_test_exact_small_case():
    a = np.array([1, 1, 0, 1, 1, 0], float)
    b = np.array([0, 1, 0, 0, 1, 0], float)
    photos = np.array([0, 0, 1, 1, 2, 2])  # per-photo difference sums: 1, 1, 0 -> two live photos
    res = cluster_permutation_test(a, b, photos)
    assert res.p_value == pytest.approx(0.5)  # signs (+,+),(+,-),(-,+),(-,-): |sum| >= 2 in 2 of 4
    assert res.diff == pytest.approx(100 * 2 / 6)
    assert cluster_permutation_test(a, a, photos).p_value == 1.0


def test_cluster_permutation_with_singletons_is_the_query_level_permutation_test():
    rng = np.random.default_rng(5)
    a = (rng.random(12) < 0.6).astype(float)
    b = (rng.random(12) < 0.3).astype(float)
    ours = cluster_permutation_test(a, b, np.arange(12))
    theirs = paired_test(a, b, method="permutation")
    assert ours.p_value == pytest.approx(theirs.p_value, abs=1e-9)


def test_equivalence_test_textbook_numbers_and_statsmodels():
    est = Estimate(1.0, 0.0, 2.0, 1.0, 0.3, 100, 100, 1, "x")
    tost = equivalence_test(est, margin=3.0)
    assert tost["equivalent"] and tost["p_value"] == pytest.approx(st.norm.cdf(-2.0))
    assert not equivalence_test(est, margin=2.0)["equivalent"]  # 90 % CI 1 +- 1.645 reaches past 2
    from statsmodels.stats.weightstats import ttost_paired

    rng = np.random.default_rng(6)
    x, y = rng.normal(0.2, 1, 4000), rng.normal(0, 1, 4000)
    d = x - y
    est = Estimate(float(d.mean()), 0, 0, float(d.std(ddof=1) / math.sqrt(len(d))), 0, len(d), len(d), 1, "t")
    p_sm = ttost_paired(x, y, -0.3, 0.3)[0]
    assert equivalence_test(est, margin=0.3)["p_value"] == pytest.approx(p_sm, abs=0.01)


def test_minimum_detectable_effect_and_gap_closure():
    assert minimum_detectable_effect(1.0) == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert minimum_detectable_effect(2.0, alpha=0.05, power=0.5) == pytest.approx(2 * 1.959964, abs=1e-5)
    assert gap_closure(30.0, 20.0, 60.0) == pytest.approx(0.25)
    assert gap_closure(10.0, 20.0, 60.0) == pytest.approx(-0.25)
    assert math.isnan(gap_closure(30.0, 59.0, 60.0))  # a 1-point gap: no ratio
    with pytest.raises(DataError):
        minimum_detectable_effect(-1.0)


def test_estimate_p_values_resolve_large_effects_and_are_calibrated_under_the_null():
    rng = np.random.default_rng(7)
    big = paired_difference(np.ones(300), (rng.random(300) < 0.5).astype(float), np.arange(300), n_resamples=500)
    assert big.p_value < 1e-6  # far below 1 / n_resamples: survives Holm over a family of ~100 tests
    # under the null the test rejects like the textbook cluster-robust t-test on per-photo sums (and near 5 %)
    ours = textbook = 0
    photos = np.repeat(np.arange(40), 2)
    for i in range(400):
        a, b = (rng.random(80) < 0.4).astype(float), (rng.random(80) < 0.4).astype(float)
        ours += paired_difference(a, b, photos, seed=i, n_resamples=500).p_value < 0.05
        sums = np.bincount(photos, weights=a - b)
        se = sums.std(ddof=1) * np.sqrt(40) / 80
        textbook += se > 0 and 2 * st.t.sf(abs((a - b).mean() / se), df=39) < 0.05
    assert abs(ours - textbook) <= 6 and 8 <= ours <= 40  # about 5-9 % of 400 null comparisons
