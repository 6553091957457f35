"""csr_core.pairs: directed R@K, symmetric pair scores, gaps to the best pair, URIEL distances and their correlation;
and the two charts of it (viz.pair_scatter, viz.correlation_text).

Ranks are built by hand in the stored layout (results.RANK_COLUMNS): a cross t2t query of parallel item i is
``img<i>.jpg#0`` in every language, so both directions of a pair rank the same items. Expected numbers are counted
from the ranks that were written, never copied from a run of the code.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csr_core import languages as L
from csr_core import viz
from csr_core.errors import DataError
from csr_core.languages import CorrelationResult
from csr_core.pairs import DIRECTED_COLUMNS, PAIR_COLUMNS, analyse_pairs, directed_recall, pair_label
from csr_core.results import RANK_COLUMNS, ResultsStore

REPO_RESULTS = Path(__file__).resolve().parent.parent / "results"
HIT, MISS = 1, 50  # ranks inside / outside K=10


@pytest.fixture(scope="module")
def _typology_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("typology-cache")


@pytest.fixture(autouse=True)
def shared_distance_memo(isolated_dirs, _typology_cache, monkeypatch):
    """URIEL distances (~0.3 s each to compute) are memoised in one temp cache for this module, not one per test;
    everything else keeps the per-test folders of conftest's isolated_dirs."""
    monkeypatch.setenv("CSR_CACHE_DIR", str(_typology_cache))


def _rows(query_lang: str, doc_lang: str, ranks, *, items=None, setting: str = "cross", direction: str = "t2t",
          cs_mode: str = "") -> list[dict]:
    items = range(len(ranks)) if items is None else items
    return [{"setting": setting, "query_lang": query_lang, "doc_lang": doc_lang, "direction": direction,
             "cs_mode": cs_mode, "cs_p": math.nan if not cs_mode else 0.5, "cs_langs": "", "query_id": f"img{i}.jpg#0",
             "rank": int(r), "image_id": f"img{i}.jpg", "caption_lang": query_lang, "caption_index": 0}
            for i, r in zip(items, ranks)]


def _frame(*parts: list[dict]) -> pd.DataFrame:
    rows = [row for part in parts for row in part]
    return pd.DataFrame(rows, columns=list(RANK_COLUMNS)).astype({"rank": "int64", "caption_index": "int64"})


def _hits_then_misses(n_hits: int, n: int) -> list[int]:
    return [HIT] * n_hits + [MISS] * (n - n_hits)


def _label(a: str, b: str) -> str:
    """The docstring's rule: English first, then alphabetical."""
    return pair_label(*sorted((a, b), key=lambda code: (code != "en", code)))


def _pair(result, a: str, b: str) -> pd.Series:
    table = result.pairs.set_index("pair")
    return table.loc[pair_label(a, b)]


def _directed(table: pd.DataFrame, q: str, d: str) -> pd.Series:
    match = table[(table["query_lang"] == q) & (table["doc_lang"] == d)]
    assert len(match) == 1, f"{q}→{d}: {len(match)} rows"
    return match.iloc[0]


# ------------------------------------------------------------------------------------------------ directed R@K


def test_pair_label_uses_an_en_dash():
    assert pair_label("de", "fr") == "de\u2013fr"


def test_directed_recall_is_the_share_of_hits_and_ignores_other_ranks():
    en_de = [1, 10, 11, 3, 200, 9, 10, 12, 1, 100]  # rank <= 10: positions 0, 1, 3, 5, 6, 8 -> 6 of 10
    de_en = [11, 11, 2, 50, 50, 50, 50, 50, 50, 50]  # 1 of 10
    ranks = _frame(
        _rows("en", "de", en_de),
        _rows("de", "en", de_en),
        _rows("en", "de", [1] * 10, cs_mode="bl"),  # code-switched cross queries: not a plain pair
        _rows("en", "en", [1] * 10, setting="monolingual", direction="t2i"),  # other settings: ignored
    )
    table = directed_recall(ranks, k=10, n_resamples=200)
    assert list(table.columns) == DIRECTED_COLUMNS
    assert len(table) == 2
    ab, ba = _directed(table, "en", "de"), _directed(table, "de", "en")
    assert ab["value"] == pytest.approx(60.0) and ab["n"] == 10
    assert ba["value"] == pytest.approx(10.0) and ba["n"] == 10
    at_1 = directed_recall(ranks, k=1, n_resamples=200)
    assert _directed(at_1, "en", "de")["value"] == pytest.approx(20.0)  # ranks 1 at positions 0 and 8
    assert _directed(at_1, "de", "en")["value"] == pytest.approx(0.0)
    for _, row in table.iterrows():
        assert row["ci_low"] <= row["value"] <= row["ci_high"]
        assert "only 10 queries" in row["note"]  # below the reliability threshold


# ------------------------------------------------------------------------------------------------ pair scores


def test_pair_score_is_the_mean_of_both_directions():
    n = 40
    ranks = _frame(
        _rows("en", "de", _hits_then_misses(30, n)),  # 75 %
        _rows("de", "en", _hits_then_misses(20, n)),  # 50 %
        _rows("en", "fr", _hits_then_misses(10, n)),  # 25 %
        _rows("fr", "en", _hits_then_misses(14, n)),  # 35 %
        _rows("de", "fr", _hits_then_misses(4, n)),  # 10 %
        _rows("fr", "de", _hits_then_misses(8, n)),  # 20 %
    )
    result = analyse_pairs(ranks, k=10, n_resamples=300)
    assert list(result.pairs.columns) == PAIR_COLUMNS
    assert list(result.pairs["pair"]) == ["en–de", "en–fr", "de–fr"]  # English first, then alphabetical
    assert len(result.directed) == 6
    expected = {("en", "de"): (75.0, 50.0), ("en", "fr"): (25.0, 35.0), ("de", "fr"): (10.0, 20.0)}
    for (a, b), (ab, ba) in expected.items():
        row = _pair(result, a, b)
        assert (row["lang_a"], row["lang_b"]) == (a, b)
        assert row["a_to_b"] == pytest.approx(ab) and row["b_to_a"] == pytest.approx(ba)
        assert row["score"] == pytest.approx((ab + ba) / 2)
        assert row["n"] == n
        assert row["ci_low"] <= row["score"] <= row["ci_high"]
        assert row["ci_low"] < row["ci_high"]  # the per-item scores vary: a real interval
        assert row["note"] == ""  # 40 items, both directions: nothing to flag
        assert _directed(result.directed, a, b)["value"] == pytest.approx(ab)
        assert _directed(result.directed, b, a)["value"] == pytest.approx(ba)
    assert result.k == 10 and result.kind == "genetic"


def test_the_stored_order_of_the_directions_does_not_matter():
    n = 32
    forward = _frame(_rows("en", "de", _hits_then_misses(16, n)), _rows("de", "en", _hits_then_misses(8, n)))
    backward = _frame(_rows("de", "en", _hits_then_misses(8, n)), _rows("en", "de", _hits_then_misses(16, n)))
    one, two = analyse_pairs(forward, n_resamples=200), analyse_pairs(backward, n_resamples=200)
    assert list(one.pairs["pair"]) == list(two.pairs["pair"]) == ["en–de"]
    assert _pair(one, "en", "de")["a_to_b"] == _pair(two, "en", "de")["a_to_b"] == pytest.approx(50.0)
    assert _pair(one, "en", "de")["score"] == _pair(two, "en", "de")["score"] == pytest.approx(37.5)


def test_pair_with_one_direction_has_no_score_and_says_why():
    n = 30
    ranks = _frame(
        _rows("en", "de", _hits_then_misses(15, n)),
        _rows("de", "en", _hits_then_misses(15, n)),
        _rows("en", "fr", _hits_then_misses(12, n)),  # fr→en never run
    )
    result = analyse_pairs(ranks, n_resamples=200)
    row = _pair(result, "en", "fr")
    assert row["a_to_b"] == pytest.approx(40.0)
    assert math.isnan(row["b_to_a"]) and math.isnan(row["score"]) and math.isnan(row["gap"])
    assert math.isnan(row["ci_low"]) and math.isnan(row["ci_high"])
    assert row["n"] == 0
    assert "only en→fr was run (no fr→en)" in row["note"]
    assert math.isfinite(_pair(result, "en", "de")["score"])
    assert "en–fr (no score)" in result.correlation.note
    assert "en–fr" not in result.correlation.languages
    # the reverse case names the direction that was run
    only_back = analyse_pairs(_frame(_rows("fr", "en", _hits_then_misses(3, n))), n_resamples=200)
    assert "only fr→en was run (no en→fr)" in _pair(only_back, "en", "fr")["note"]


def test_pair_scored_on_the_items_both_directions_rank():
    # en→de ranks items 0..3, de→en items 2..5: items 2 and 3 are shared
    ranks = _frame(_rows("en", "de", [HIT, HIT, HIT, MISS], items=range(0, 4)),
                   _rows("de", "en", [HIT, MISS, MISS, MISS], items=range(2, 6)))
    row = _pair(analyse_pairs(ranks, n_resamples=200), "en", "de")
    assert row["a_to_b"] == pytest.approx(75.0) and row["b_to_a"] == pytest.approx(25.0)  # each on its own items
    # shared item 2: hit both ways (100); item 3: miss en→de, miss de→en (0) -> 50
    assert row["score"] == pytest.approx(50.0)
    assert row["n"] == 2
    assert "scored on the 2 items both directions rank" in row["note"]
    assert "only 2 queries" in row["note"]


def test_gap_to_the_best_pair():
    n = 40
    counts = {("en", "de"): (30, 26), ("en", "fr"): (20, 18), ("de", "fr"): (12, 10)}
    parts = []
    for (a, b), (ab, ba) in counts.items():
        parts += [_rows(a, b, _hits_then_misses(ab, n)), _rows(b, a, _hits_then_misses(ba, n))]
    result = analyse_pairs(_frame(*parts), n_resamples=300)
    scores = {pair_label(a, b): 100.0 * (ab + ba) / (2 * n) for (a, b), (ab, ba) in counts.items()}
    best = max(scores, key=scores.__getitem__)
    assert best == "en–de"
    table = result.pairs.set_index("pair")
    assert table.loc[best, "gap"] == 0.0
    assert table.loc[best, "gap_ci_low"] == 0.0 and table.loc[best, "gap_ci_high"] == 0.0
    for label, score in scores.items():
        assert table.loc[label, "score"] == pytest.approx(score)
        assert table.loc[label, "gap"] == pytest.approx(scores[best] - score)
        assert table.loc[label, "gap_ci_low"] <= table.loc[label, "gap"] <= table.loc[label, "gap_ci_high"]
    # de–fr falls 42.5 points short of en–de (70 vs 27.5) on the same 40 items: the paired interval excludes 0
    assert table.loc["de–fr", "gap_ci_low"] > 0


def test_duplicate_query_ids_are_an_error():
    ranks = _frame(_rows("en", "de", [1, 2, 3]), _rows("en", "de", [4], items=[1]), _rows("de", "en", [1, 2, 3]))
    with pytest.raises(DataError, match=r"en→de.*'img1\.jpg#0' appears twice"):
        analyse_pairs(ranks)
    with pytest.raises(DataError, match="appears twice"):
        directed_recall(ranks)


def test_ranks_without_cross_queries_are_an_error():
    mono = _frame(_rows("en", "en", [1, 2, 3], setting="monolingual", direction="t2i"),
                  _rows("en", "de", [1, 2, 3], cs_mode="ml"))  # cross but code-switched: not a plain pair
    for ranks in (mono, _frame()):
        with pytest.raises(DataError, match="no cross-lingual"):
            analyse_pairs(ranks)
    assert directed_recall(mono).empty


# ------------------------------------------------------------------------------------------------ distances


def _symmetric_rows(langs, n_hits, n: int = 20) -> list[dict]:
    """Both directions of every pair of ``langs`` with ``n_hits(a, b)`` hits among ``n`` items (same items)."""
    rows: list[dict] = []
    for a, b in itertools.combinations(langs, 2):
        m = n_hits(a, b)
        rows += _rows(a, b, _hits_then_misses(m, n)) + _rows(b, a, _hits_then_misses(m, n))
    return rows


def _symmetric(langs, n_hits, n: int = 20) -> pd.DataFrame:
    return _frame(_symmetric_rows(langs, n_hits, n))


def test_pair_distances_are_uriel_distances_and_caption_sets_count_as_their_language():
    langs = ["en", "de", "ja", "zh-x-f8k"]
    ranks = _symmetric(langs, lambda a, b: 10)
    for kind in ("genetic", "syntactic"):
        result = analyse_pairs(ranks, kind=kind, n_resamples=100)
        assert len(result.pairs) == 6 and result.missing == {}
        for _, row in result.pairs.iterrows():
            plain = [L.typology_lang(code) for code in (row["lang_a"], row["lang_b"])]
            assert row["distance"] == pytest.approx(L.uriel_distance(*plain, kind))
        assert _pair(result, "de", "zh-x-f8k")["distance"] == pytest.approx(L.uriel_distance("de", "zh", kind))
        assert result.kind == kind and kind in result.correlation.note


def test_pair_without_uriel_data_keeps_its_row_and_is_listed_missing():
    with pytest.raises(DataError):
        L.uriel_distance("en", "tlh", "genetic")  # the premise: URIEL has no lineage for Klingon
    ranks = _symmetric(["en", "de", "tlh"], lambda a, b: 5)
    result = analyse_pairs(ranks, n_resamples=100)
    assert len(result.pairs) == 3
    assert set(result.missing) == {"en–tlh", "de–tlh"}
    for label in result.missing:
        row = result.pairs.set_index("pair").loc[label]
        assert math.isnan(row["distance"]) and math.isfinite(row["score"])
        assert "no URIEL genetic distance" in row["note"]
    assert "(no URIEL genetic data)" in result.correlation.note
    assert result.correlation.n == 1


def test_correlation_counts_pairs_with_score_and_distance_and_far_pairs_score_lower():
    langs = ["en", "de", "nl", "fr", "ja"]
    distance = {frozenset(p): L.uriel_distance(*p) for p in itertools.combinations(langs, 2)}
    assert len(set(distance.values())) >= 4  # the premise: the distances differ

    def n_hits(a: str, b: str) -> int:  # a strictly decreasing function of the distance
        return int(round(20 * (1.0 - distance[frozenset((a, b))]))) + 2

    ranks = _frame(
        _symmetric_rows(langs, n_hits),
        _rows("en", "tlh", _hits_then_misses(7, 20)), _rows("tlh", "en", _hits_then_misses(7, 20)),  # no distance
        _rows("de", "pt", _hits_then_misses(7, 20)),  # one direction: no score
    )
    result = analyse_pairs(ranks, n_resamples=300)
    assert len(result.pairs) == 10 + 2
    corr = result.correlation
    assert corr.n == 10  # pairs with a score and a distance
    assert set(corr.languages) == {_label(a, b) for a, b in itertools.combinations(langs, 2)}
    assert corr.spearman_rho < 0 and corr.pearson_r < 0
    usable = result.pairs.dropna(subset=["score", "distance"])
    assert len(usable) == corr.n
    # the same numbers from an independent implementation (pandas), on the table the analysis returns
    assert corr.pearson_r == pytest.approx(usable["distance"].corr(usable["score"]))
    assert corr.spearman_rho == pytest.approx(usable["distance"].corr(usable["score"], method="spearman"))
    for low, high, point in ((*corr.spearman_ci, corr.spearman_rho), (*corr.pearson_ci, corr.pearson_r)):
        assert -1.0 <= low <= point <= high <= 1.0
    # the gap mirrors the score: its correlation with distance has the sign flipped
    assert usable["distance"].corr(usable["gap"]) == pytest.approx(-corr.pearson_r)
    assert "left out: " in corr.note and "de–pt (no score)" in corr.note and "en–tlh (no URIEL genetic data)" in corr.note
    assert "not independent" in corr.note


def test_analysis_is_deterministic_for_a_seed():
    ranks = _symmetric(["en", "de", "fr", "ja"], lambda a, b: len(a + b) * 2 + (3 if "ja" in (a, b) else 0), n=40)
    one = analyse_pairs(ranks, seed=3, n_resamples=200)
    two = analyse_pairs(ranks, seed=3, n_resamples=200)
    pd.testing.assert_frame_equal(one.pairs, two.pairs)
    pd.testing.assert_frame_equal(one.directed, two.directed)
    assert one.correlation == two.correlation


def _shipped_xtd10_run() -> str:
    store = ResultsStore(REPO_RESULTS)
    if not store.runs_dir.is_dir():
        pytest.skip(f"no shipped runs in {store.runs_dir}")
    for manifest in store.runs():
        params = manifest.get("params") or {}
        if (params.get("dataset") == "xtd10" and "cross" in (params.get("settings") or [])
                and len(params.get("langs") or []) == 10):
            return str(manifest["run_id"])
    pytest.skip(f"no shipped XTD10 cross run with 10 languages in {store.runs_dir}")


def test_shipped_xtd10_run_has_45_scored_pairs(monkeypatch):
    run_id = _shipped_xtd10_run()
    ranks = ResultsStore(REPO_RESULTS).load_ranks(run_id)
    # 45 fresh URIEL distances would take ~15 s; the distances themselves are checked above, on fewer pairs
    codes = sorted(set(ranks["query_lang"]))
    stand_in = {frozenset(p): (i + 1) / 100 for i, p in enumerate(itertools.combinations(codes, 2))}
    monkeypatch.setattr("csr_core.pairs.uriel_distance", lambda a, b, kind="genetic": stand_in[frozenset((a, b))])
    result = analyse_pairs(ranks, n_resamples=100)
    assert len(codes) == 10 and set(ranks["doc_lang"]) == set(codes)
    assert len(result.directed) == 10 * 9
    assert len(result.pairs) == 10 * 9 // 2 == 45
    assert result.pairs["score"].notna().all() and np.isfinite(result.pairs["score"]).all()
    assert result.pairs["distance"].notna().all() and result.missing == {}
    assert result.correlation.n == 45
    assert (result.pairs["gap"] >= 0).all() and (result.pairs["gap"] == 0).sum() >= 1
    # both directions of XTD10 rank the same parallel items: score = mean of the two directed R@K
    assert np.allclose(result.pairs["score"], (result.pairs["a_to_b"] + result.pairs["b_to_a"]) / 2)


# ------------------------------------------------------------------------------------------------ charts


def _arr(value) -> np.ndarray:
    """A plotly JSON array: a plain list, or plotly's typed-array form {"dtype", "bdata", "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        import base64

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).astype(float)
    return np.array([math.nan if v is None else v for v in value], dtype=float)


def _plain(text: str) -> str:
    return text.replace("\u2212", "-")


def _correlation(**fields) -> CorrelationResult:
    base = dict(n=45, pearson_r=-0.534, pearson_p=0.001, spearman_rho=-0.481, spearman_p=0.002, note="a; b",
                pearson_ci=(-0.781, -0.212), spearman_ci=(-0.719, -0.226))
    base.update(fields)
    return CorrelationResult(**base)  # type: ignore[arg-type]


def test_correlation_text_shows_both_coefficients_their_cis_and_n():
    text = _plain(viz.correlation_text(_correlation()))
    assert "Spearman" in text and "Pearson" in text
    assert re.search(r"ρ = -0\.48 \[-0\.72, -0\.23\]", text)
    assert re.search(r"r = -0\.53 \[-0\.78, -0\.21\]", text)
    assert "n = 45 pairs" in text
    assert "n = 12 languages" in viz.correlation_text(_correlation(n=12), unit="languages")


def test_correlation_text_says_why_there_is_none():
    few = L.correlate([0.1, 0.5], [10.0, 20.0], ["a–b", "c–d"], unit="pair", value="score")
    text = viz.correlation_text(few)
    assert text.startswith("no correlation:") and "at least 3" in text
    flat = L.correlate([0.1, 0.5, 0.9], [7.0, 7.0, 7.0], ["p", "q", "r"], unit="pair", value="score")
    assert "equal" in viz.correlation_text(flat) and "ρ" not in viz.correlation_text(flat)


def _scatter_result():
    langs = ["en", "de", "nl", "ja"]
    distance = {frozenset(p): L.uriel_distance(*p) for p in itertools.combinations(langs, 2)}
    ranks = _frame(
        _symmetric_rows(langs, lambda a, b: int(round(30 * (1 - distance[frozenset((a, b))]))) + 3, n=40),
        _rows("en", "tlh", _hits_then_misses(9, 40)), _rows("tlh", "en", _hits_then_misses(9, 40)),
    )
    return analyse_pairs(ranks, n_resamples=200)


def test_pair_scatter_has_one_point_per_pair_with_a_distance():
    result = _scatter_result()
    chart = viz.pair_scatter(result.pairs, k=10, correlation=result.correlation, title="pairs")
    spec = json.loads(chart.fig.to_json())
    points = [t for t in spec["data"] if t.get("mode") == "markers+text"]
    assert len(points) == 1
    xs, ys = _arr(points[0]["x"]), _arr(points[0]["y"])
    placed = np.isfinite(xs) & np.isfinite(ys)
    with_distance = result.pairs["distance"].notna()
    assert placed.sum() == with_distance.sum() == 6  # en–tlh has no URIEL distance
    labels = [str(t) for t, ok in zip(points[0]["text"], placed) if ok]
    assert sorted(labels) == sorted(result.pairs.loc[with_distance, "pair"])
    by_label = result.pairs.set_index("pair")
    for label, x, y in zip(points[0]["text"], xs, ys):
        if math.isfinite(x):
            assert x == pytest.approx(by_label.loc[label, "distance"]) and y == pytest.approx(by_label.loc[label, "score"])
    plus = _arr(points[0]["error_y"]["array"])
    expected_plus = (result.pairs["ci_high"] - result.pairs["score"]).to_numpy()
    assert np.allclose(plus[placed], expected_plus[placed])
    # the trend line is the least-squares fit of the placed pairs
    fit = chart.stats["fit"]
    slope, intercept = np.polyfit(xs[placed], ys[placed], deg=1)
    assert fit["slope"] == pytest.approx(slope) and fit["intercept"] == pytest.approx(intercept)
    assert fit["slope"] < 0  # far pairs were built to score lower
    # the table behind it keeps every pair, the one without a distance included
    assert len(chart.table) == len(result.pairs) and "en–tlh" in set(chart.table["pair"])
    assert any("en–tlh" in note and "no URIEL genetic distance" in note for note in chart.notes)
    assert result.correlation.note in chart.notes
    assert chart.stats["correlation"]["n"] == result.correlation.n == 6
    title = _plain(spec["layout"]["title"]["text"])
    assert title.startswith("pairs") and "n = 6 pairs" in title
    assert spec["layout"]["yaxis"]["title"]["text"].startswith("pair score") and "R@10" in spec["layout"]["yaxis"][
        "title"]["text"]


def test_pair_scatter_without_distances_or_rows_is_an_empty_chart_saying_why():
    result = _scatter_result()
    no_distance = result.pairs.assign(distance=math.nan)
    chart = viz.pair_scatter(no_distance, kind="syntactic")
    assert chart.notes == ["no URIEL syntactic distance for these pairs"]
    assert len(chart.table) == len(result.pairs)
    empty = viz.pair_scatter(result.pairs.iloc[:0])
    assert empty.notes == [viz.NO_DATA] and empty.table.empty
    with pytest.raises(DataError):
        viz.pair_scatter(result.pairs.drop(columns=["score"]))


def test_pairs_do_not_depend_on_the_order_the_ranks_were_stored_in():
    rng = np.random.default_rng(3)
    parts = []
    for a, b in itertools.combinations(("en", "de", "fr"), 2):
        for q, d in ((a, b), (b, a)):
            parts.append(_rows(q, d, rng.choice([HIT, MISS], size=30)))
    ranks = _frame(*parts)
    ordered = analyse_pairs(ranks, n_resamples=200)
    shuffled = analyse_pairs(ranks.sample(frac=1.0, random_state=7).reset_index(drop=True), n_resamples=200)
    pd.testing.assert_frame_equal(ordered.pairs, shuffled.pairs)
    assert ordered.pairs["gap_ci_low"].notna().all()  # every pair ranks the same 30 items: every gap has a CI


# ------------------------------------------------------------------------------------------------ Mantel test


def _pairs_table(langs, score_of, distance_of) -> pd.DataFrame:
    rows = [{"pair": pair_label(a, b), "lang_a": a, "lang_b": b, "score": score_of(a, b), "distance": distance_of(a, b)}
            for a, b in itertools.combinations(langs, 2)]
    return pd.DataFrame(rows)


def test_mantel_rho_is_spearman_over_pairs_and_its_p_value_permutes_languages():
    from scipy.stats import spearmanr

    from csr_core.pairs import mantel_test

    langs = [f"l{i}" for i in range(7)]
    position = {lang: i for i, lang in enumerate(langs)}
    far = _pairs_table(langs, lambda a, b: 100 - 5 * abs(position[a] - position[b]) ** 1.5,
                       lambda a, b: abs(position[a] - position[b]) / 6)
    result = mantel_test(far, seed=0, n_permutations=999)
    assert result.rho == pytest.approx(float(spearmanr(far["distance"], far["score"]).statistic))
    assert result.rho == pytest.approx(-1.0) and result.n_languages == 7
    # a perfect relation is the most extreme of the 7! label orders, up to its mirror image: p near 2/7!
    assert result.p_value <= 0.01
    rng = np.random.default_rng(1)
    noise = {frozenset(p): float(rng.normal()) for p in itertools.combinations(langs, 2)}
    unrelated = _pairs_table(langs, lambda a, b: noise[frozenset((a, b))], lambda a, b: abs(position[a] - position[b]))
    assert mantel_test(unrelated, seed=0, n_permutations=999).p_value > 0.05
    again = mantel_test(unrelated, seed=0, n_permutations=999)
    assert again == mantel_test(unrelated, seed=0, n_permutations=999)


def test_mantel_needs_every_pair_and_four_languages():
    from csr_core.pairs import mantel_test

    langs = ["a", "b", "c", "d", "e"]
    table = _pairs_table(langs, lambda a, b: float(ord(a) + ord(b)), lambda a, b: float(abs(ord(a) - ord(b))))
    incomplete = mantel_test(table.iloc[1:])
    assert math.isnan(incomplete.p_value) and "1 are missing" in incomplete.note
    few = mantel_test(_pairs_table(langs[:3], lambda a, b: 1.0 + ord(a), lambda a, b: 1.0 + ord(b)))
    assert math.isnan(few.rho) and "at least 4 languages" in few.note
