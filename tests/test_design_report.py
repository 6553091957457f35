"""The second experiment's report on runs with planted effects: the declared tests find what was planted, the prose
follows the tests, and only the run set's runs are read."""

from __future__ import annotations

import numpy as np
import pandas as pd

from csr_core.results import ResultsStore, build_manifest, make_rows
from csr_core.training import design_render, design_report

LANGS = ("en", "de", "fr", "pt", "cs", "zh", "ar")
CAPTIONS = {"zh": 5, "ar": 3}
N_PHOTOS = 120


def _ranks(hit_prob: dict[str, float], rng: np.random.Generator, base: dict | None = None) -> pd.DataFrame:
    """Monolingual t2i ranks: a hit (rank 1) with the language's probability, else rank 50; `base` (the EN-only
    hits of the same seed) keeps queries paired: an arm's hit is EN-only's hit OR an extra hit."""
    rows = []
    for lang in LANGS:
        for p in range(N_PHOTOS):
            for j in range(CAPTIONS.get(lang, 1)):
                qid = f"{p}.jpg#{j}" if lang == "en" else f"{lang}:{p}.jpg#{j}"
                hit = rng.random() < hit_prob[lang]
                if base is not None:
                    hit = base[qid] or (rng.random() < hit_prob[lang])
                rows.append({"setting": "monolingual", "query_lang": lang, "doc_lang": "img", "direction": "t2i",
                             "cs_mode": "", "cs_p": np.nan, "cs_langs": "", "query_id": qid,
                             "rank": 1 if hit else 50, "image_id": f"{p}.jpg", "caption_lang": lang,
                             "caption_index": j})
    return pd.DataFrame(rows)


def _write(store: ResultsStore, model: str, arm: str, seed: int, ranks: pd.DataFrame, run_set: str) -> None:
    params = {"model": model, "dataset": "flickr8k-multi30k", "split": "test", "seed": seed, "train_arm": arm,
              "langs": list(LANGS), "settings": ["monolingual"]}
    if run_set:
        params["run_set"] = run_set
    store.write_run(make_rows([]), build_manifest(params), ranks)


def _store(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path)
    rng = np.random.default_rng(0)
    en_prob = {lang: (0.6 if lang == "en" else 0.25) for lang in LANGS}
    extra = {  # extra hits an arm adds on top of EN-only, per language
        "blcs-zh": {lang: (0.35 if lang in ("zh", "ar") else 0.0) for lang in LANGS},
        "blcs-de": {lang: (0.35 if lang in ("de", "fr", "pt") else 0.0) for lang in LANGS},
        "mlcs-de-fr-pt-zh-ar": {lang: (0.2 if lang != "en" else 0.0) for lang in LANGS},
    }
    for seed in range(3):
        en = _ranks(en_prob, rng)
        base = dict(zip(en["query_id"], en["rank"] == 1))
        # translate-test rows of EN-only: the X captions translated, here a planted +30 points outside English
        tt = _ranks({lang: 0.3 for lang in LANGS}, rng, base)
        tt = tt[tt["query_lang"] != "en"].assign(setting="translate-test")
        _write(store, f"csr-mini-m:en/s{seed}", "en", seed, pd.concat([en, tt], ignore_index=True), "experiment-2")
        for arm, prob in extra.items():
            _write(store, f"csr-mini-m:{arm}/s{seed}", arm, seed, _ranks(prob, rng, base), "experiment-2")
    # a run outside the run set (an earlier experiment's model name) must not be read
    _write(store, "csr-mini-m:blcs-zh/s0", "blcs-zh", 0, _ranks({lang: 0.0 for lang in LANGS}, rng), "")
    return store


def test_declared_tests_find_the_planted_effects(tmp_path):
    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    (tower,) = report.towers
    assert tower.arms == ["en", "blcs-de", "blcs-zh", "mlcs-de-fr-pt-zh-ar", design_report.TRANSLATE_TEST]
    assert tower.seeds["blcs-zh"] == [0, 1, 2] and report.n_runs == 12
    f2 = {t.arm: t for t in tower.f2}
    assert f2["blcs-zh"].significant and f2["blcs-zh"].estimate.value > 15
    assert f2["blcs-de"].significant and f2["blcs-de"].estimate.value < -15
    assert not f2["mlcs-de-fr-pt-zh-ar"].significant  # equal gains everywhere: nothing to find
    f1 = {(t.arm, t.target): t for t in tower.f1}
    assert len(tower.f1) == 3 * len(LANGS) + len(LANGS) - 1  # translate-test has no English row
    assert f1[(design_report.TRANSLATE_TEST, "zh")].significant
    assert f1[("blcs-zh", "zh")].significant and not f1[("blcs-zh", "de")].significant
    assert f1[("blcs-zh", "de")].estimate.value == 0.0  # no extra hits planted: exactly EN-only's hits
    cost = {c.arm: c for c in tower.english}
    assert cost["blcs-de"].tost["equivalent"]  # English hits identical to EN-only's


def test_rendered_report_follows_the_tests(tmp_path):
    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    text = design_render.render(report)
    assert "distant languages gain significantly more than close ones under blcs-zh" in text
    assert "close languages gain significantly more than distant ones under blcs-de" in text
    assert "no difference between the groups is shown for mlcs-de-fr-pt-zh-ar (MDE" in text
    assert "| blcs-de | +0.0 | [+0.0, +0.0] | unchanged within ±3" in text
    assert "3/5" in text  # the rows say how many of the design's seeds they pool


def test_facts_round_trip_through_json(tmp_path):
    import json

    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    written = design_render.write(report, tmp_path / "out")
    back = design_report.from_json(json.loads((tmp_path / "out" / "report.json").read_text()))
    assert design_render.render(back).split("\n", 3)[3] == design_render.render(report).split("\n", 3)[3]
    assert (tmp_path / "out" / "README.md") in written


def test_delta_frame_orders_languages_close_to_distant(tmp_path):
    (tower,) = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",)).towers
    frame = design_report.delta_frame(tower)
    assert list(frame["arm"].unique()) == ["mlcs-de-fr-pt-zh-ar"]  # the headline arm present
    assert list(frame["lang"]) == ["en", "de", "fr", "pt", "cs", "zh", "ar"]
    assert list(frame["group"]) == ["English", "close", "close", "close", "between", "distant", "distant"]
    every = design_report.delta_frame(tower, arms=["blcs-zh", "blcs-de"])
    assert set(every["arm"]) == {"blcs-zh", "blcs-de"} and len(every) == 14
    assert design_report.lang_order(["zh", "cs", "en", "pt"]) == ["en", "pt", "cs", "zh"]
