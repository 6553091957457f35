"""Every evaluation setting end to end: a real tiny open_clip model on real shared data, rows through the store."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from csr_core.errors import CancelledError, CSRError, DataError

TINY = "open_clip-config:" + str(Path(__file__).parent / "assets" / "csr-test-tiny-vit.json")
LANGS = ["en", "de", "fr", "cs"]


@pytest.fixture(scope="module")
def tiny_encoder():
    from csr_core.encoders.registry import load_encoder

    return load_encoder(TINY)


@pytest.fixture(scope="module")
def small_test_set(shared_data):
    from csr_core.datasets import load_dataset

    return load_dataset("flickr8k-multi30k", split="test", data_root=shared_data).subset(40)


@pytest.fixture(scope="module")
def full_run(tiny_encoder, small_test_set, tmp_path_factory):
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    store = ResultsStore(tmp_path_factory.mktemp("results"))
    config = EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=LANGS,
                        settings=["monolingual", "cross", "multilingual", "cs-queries"], cs_ps=[0.0, 0.5, 1.0],
                        n_resamples=200)
    stages = []
    outcome = run_evaluation(config, encoder=tiny_encoder, dataset=small_test_set, store=store,
                             progress=lambda stage, done, total: stages.append(stage))
    return outcome, store, stages


def test_every_setting_writes_the_expected_rows(full_run):
    outcome, store, stages = full_run
    rows = store.load(include_reference=False)
    assert len(rows) == len(outcome.rows)
    counts = rows.groupby("setting").size().to_dict()
    # monolingual: per language 3 K x 2 directions + median/mean rank x 2 + mean recall
    assert counts["monolingual"] == 4 * (3 * 2 + 2 * 2 + 1)
    assert counts["cross"] == 12 * (3 + 2)  # 4 x 3 ordered pairs
    assert counts["multilingual"] == (3 + 2) * 2 + 4  # i2t + t2i + 4 language shares
    assert counts["cs-queries"] == (3 + 1) * 3 * (3 + 2)  # 3 BL + 1 ML, 3 p values
    assert any(stage.startswith("encode images") for stage in stages)


def test_values_are_in_range_and_cis_bracket_them(full_run):
    rows = full_run[1].load(include_reference=False)
    recall = rows[rows["metric"] == "recall"]
    assert recall["value"].between(0, 100).all()
    assert (recall["ci_low"] <= recall["value"] + 1e-9).all() and (recall["value"] <= recall["ci_high"] + 1e-9).all()
    shares = rows[rows["metric"] == "lang_share"]
    assert shares["value"].sum() == pytest.approx(100.0)
    cells = recall.assign(cs_p=recall["cs_p"].fillna(-1)).groupby(
        ["setting", "query_lang", "doc_lang", "direction", "cs_mode", "cs_p", "cs_langs"])
    for _, cell in cells:
        values = cell.sort_values("k")["value"].to_numpy()
        assert len(values) == 3 and (np.diff(values) >= 0).all()


def test_monolingual_equals_the_metrics_module_on_the_same_embeddings(full_run, tiny_encoder, small_test_set):
    from csr_core.metrics import recall_at_k, retrieval_metrics

    rows = full_run[1].load(include_reference=False)
    flat = small_test_set.flat("de")
    text_emb = tiny_encoder.encode_texts(flat.texts)
    image_emb = tiny_encoder.encode_images(small_test_set.image_paths)
    expected = retrieval_metrics(text_emb, image_emb, flat.caption_image, ks=(1, 5, 10))
    got = rows[(rows["setting"] == "monolingual") & (rows["metric"] == "recall")]
    for k in (1, 5, 10):
        t2i = got[(got["query_lang"] == "de") & (got["direction"] == "t2i") & (got["k"] == k)]["value"].item()
        i2t = got[(got["doc_lang"] == "de") & (got["direction"] == "i2t") & (got["k"] == k)]["value"].item()
        assert t2i == pytest.approx(recall_at_k(expected.t2i_ranks, [k])[k])
        assert i2t == pytest.approx(recall_at_k(expected.i2t_ranks, [k])[k])


def test_per_query_ranks_are_stored_and_reproduce_the_rows(full_run):
    from csr_core.metrics import recall_at_k

    outcome, store, _ = full_run
    ranks = store.load_ranks(outcome.run_id)
    cross = ranks[(ranks["setting"] == "cross") & (ranks["query_lang"] == "fr") & (ranks["doc_lang"] == "cs")]
    assert len(cross) == 40
    rows = store.load(include_reference=False)
    row = rows[(rows["setting"] == "cross") & (rows["query_lang"] == "fr") & (rows["doc_lang"] == "cs")
               & (rows["k"] == 5)]
    assert row["value"].item() == pytest.approx(recall_at_k(cross["rank"].to_numpy(), [5])[5])


def test_small_query_sets_are_flagged_not_reported_bare(tiny_encoder, small_test_set):
    from csr_core.evaluate import EvalConfig, run_evaluation

    outcome = run_evaluation(EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=["en"], n_resamples=50),
                             encoder=tiny_encoder, dataset=small_test_set.subset(12), write=False)
    assert outcome.rows["note"].str.contains("not statistically meaningful").all()


def test_cancel_leaves_no_rows(tiny_encoder, small_test_set, tmp_path):
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    store = ResultsStore(tmp_path)
    cancel = threading.Event()

    def progress(stage, done, total):
        if stage.startswith("encode captions"):
            cancel.set()

    config = EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=["en", "de"], n_resamples=50)
    with pytest.raises(CancelledError):
        run_evaluation(config, encoder=tiny_encoder, dataset=small_test_set, store=store, progress=progress,
                       cancel=cancel)
    assert store.load(include_reference=False).empty
    assert store.runs() == []


def test_cross_lingual_runs_on_text_only_xtd10(tiny_encoder, shared_data):
    from csr_core.datasets import load_dataset
    from csr_core.evaluate import EvalConfig, run_evaluation

    xtd = load_dataset("xtd10", data_root=shared_data).subset(50)
    assert xtd.image_paths is None
    outcome = run_evaluation(EvalConfig(model=TINY, dataset="xtd10", langs=["en", "de", "ja", "zh"],
                                        settings=["cross"], n_resamples=50),
                             encoder=tiny_encoder, dataset=xtd, write=False)
    pairs = set(zip(outcome.rows["query_lang"], outcome.rows["doc_lang"]))
    # STAIR's Japanese captions are independent captions, not translations: left out with a note
    assert ("en", "zh") in pairs and not any("ja" in pair for pair in pairs)
    assert any("ja" in note for note in outcome.notes)
    with pytest.raises(DataError, match="text-only"):
        run_evaluation(EvalConfig(model=TINY, dataset="xtd10", langs=["en"], settings=["monolingual"]),
                       encoder=tiny_encoder, dataset=xtd, write=False)


def test_bad_configs_are_clear_errors():
    from csr_core.evaluate import EvalConfig

    with pytest.raises(DataError, match="unknown setting"):
        EvalConfig(model=TINY, dataset="x", settings=["bogus"])
    with pytest.raises(DataError, match="outside"):
        EvalConfig(model=TINY, dataset="x", settings=["cs-queries"], cs_ps=[float("nan")])
    with pytest.raises(DataError, match="positive"):
        EvalConfig(model=TINY, dataset="x", ks=[0])
    # found before any model loads, not after every embedding is computed
    for bad, message in ((dict(ks=[1, 5, 5]), "K lists 5 more than once"), (dict(langs=["en", "en"]), "langs lists en"),
                         (dict(cs_ps=[0.5, 0.5]), "cs probabilities lists 0.5"), (dict(seed=-1), "between 0 and"),
                         (dict(seed=2**64), "between 0 and"), (dict(seed=1.5), "an integer"),
                         (dict(cs_query_seed=-3), "cs query seed"), (dict(n_resamples=0), "n_resamples")):
        with pytest.raises(CSRError, match=message):
            EvalConfig(model=TINY, dataset="x", **bad)


def test_k_equal_to_the_gallery_is_refused_like_k_beyond_it(tiny_encoder, small_test_set):
    from csr_core.evaluate import EvalConfig, run_evaluation

    gallery = small_test_set.subset(10)
    with pytest.raises(DataError, match="R@10 would be 100 for every query; choose K < 10"):
        run_evaluation(EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=["en"], ks=(1, 10), n_resamples=20),
                       encoder=tiny_encoder, dataset=gallery, write=False)
    outcome = run_evaluation(EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=["en"], ks=(1, 9),
                                        n_resamples=20), encoder=tiny_encoder, dataset=gallery, write=False)
    assert set(outcome.rows["k"].dropna()) >= {1, 9}


def test_language_gaps_are_paired_with_holm(full_run):
    from csr_core.analysis import language_gaps

    outcome, store, _ = full_run
    gaps = language_gaps(store.load_ranks(outcome.run_id), k=10)
    assert set(gaps["lang"]) == {"de", "fr", "cs"}
    assert gaps["paired"].all()
    assert np.allclose(gaps["gap"], gaps["pivot_value"] - gaps["lang_value"])
    assert ((gaps["ci_low"] <= gaps["gap"] + 1e-9) & (gaps["gap"] <= gaps["ci_high"] + 1e-9)).all()
    assert (gaps["p_holm"] >= gaps["p_value"] - 1e-12).all()


def test_compare_runs_of_a_run_with_itself_is_zero_and_not_significant(full_run):
    from csr_core.analysis import compare_runs

    outcome, store, _ = full_run
    ranks = store.load_ranks(outcome.run_id)
    same = compare_runs(ranks, ranks, k=5)
    assert (same["delta"] == 0).all() and not same["significant"].any()
    worse = ranks.copy()
    worse.loc[worse["query_lang"] == "de", "rank"] = 10_000  # every German query now misses
    diff = compare_runs(ranks, worse, k=10).set_index("lang")
    assert diff.loc["de", "delta"] == pytest.approx(diff.loc["de", "value_a"])
    assert diff.loc["en", "delta"] == 0
    cs = compare_runs(ranks, ranks, setting="cs-queries", cs_mode="ml", cs_p=0.5)
    assert list(cs["lang"]) == ["de,fr,cs"]


def test_runs_over_different_galleries_are_not_compared(full_run):
    from csr_core.analysis import check_same_gallery, compare_runs

    outcome, store, _ = full_run
    ranks = store.load_ranks(outcome.run_id)
    photos = sorted(set(ranks["image_id"]))
    smaller = ranks[ranks["image_id"].isin(photos[:10])]  # a 10-photo run: its queries are a subset of the other's
    assert check_same_gallery(ranks, ranks, "monolingual") == len(photos)
    with pytest.raises(DataError, match=f"different photo galleries \\({len(photos)} vs 10 photos, 10 shared\\)"):
        compare_runs(ranks, smaller, k=10)


def test_cli_eval_writes_a_run_and_skips_an_identical_one(shared_data, tmp_path):
    command = [sys.executable, "-m", "csr_core", "eval", "--model", TINY, "--dataset", "flickr8k-multi30k",
               "--langs", "en,de", "--max-images", "30", "--out", str(tmp_path), "--quiet"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "R@10" in first.stdout and "run " in first.stdout
    again = subprocess.run(command + ["--skip-existing"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "skipped" in again.stdout
    bad = subprocess.run(command + ["--settings", "bogus"], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "unknown setting" in bad.stderr


def test_a_csr_mini_name_fills_the_training_arm_unless_one_is_given():
    from csr_core.evaluate import EvalConfig

    assert EvalConfig(model="csr-mini-m:blcs-de", dataset="flickr8k-multi30k").train_arm == "blcs-de"
    assert EvalConfig(model="csr-mini:translate-train/s2", dataset="flickr8k-multi30k").train_arm == "translate-train"
    assert EvalConfig(model="csr-mini", dataset="flickr8k-multi30k").train_arm == "en"  # the default heads
    assert EvalConfig(model="open_clip:ViT-B-32/openai", dataset="xtd10").train_arm == ""
    assert EvalConfig(model="csr-mini:en", dataset="xtd10", train_arm="my-label").train_arm == "my-label"


def test_row_cis_resample_photos_not_captions(tiny_encoder, shared_data):
    """Five captions of a photo are one unit of evidence: the row CI of text->image R@K is the photo-level cluster
    bootstrap of the per-query hits (the plain bootstrap over 5 x as many 'independent' queries is too narrow)."""
    from csr_core.datasets import load_dataset
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.metrics import hits_at_k
    from csr_core.stats import bootstrap_ci, cluster_bootstrap

    test_set = load_dataset("flickr8k-multi30k", split="test", data_root=shared_data).subset(40)
    config = EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=["en-x-f8k"], settings=["monolingual"],
                        n_resamples=300)
    out = run_evaluation(config, encoder=tiny_encoder, dataset=test_set, write=False)
    ranks = out.ranks[(out.ranks["direction"] == "t2i")]
    row = out.rows[(out.rows["direction"] == "t2i") & (out.rows["metric"] == "recall") & (out.rows["k"] == 10)].iloc[0]
    hits = hits_at_k(ranks["rank"].to_numpy(), 10)
    est = cluster_bootstrap(hits, ranks["image_id"].to_numpy(), seed=0, n_resamples=300)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((est.low, est.high))
    assert len(set(ranks["image_id"])) < len(ranks)  # several captions per photo here
    assert (row["ci_low"], row["ci_high"]) != pytest.approx(bootstrap_ci(hits, seed=0, n_resamples=300))
