"""The second experiment's report on runs with planted effects: the declared tests find what was planted, the prose
follows the tests, and only the run set's runs are read."""

from __future__ import annotations

import json
import re

from csr_core.training import design_render, design_report

from testsupport import PLANTED_LANGS as LANGS  # noqa: E402
from testsupport import build_planted_design_store as _store  # noqa: E402


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
    assert tower.lang_share[("blcs-zh", "en")] == (40.0, 0.0) and tower.lang_share[("en", "ar")][0] == 10.0
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
    assert "(csr-mini-m) 12/75 (tower, arm, seed) runs" in text  # design arms only: translate-test is no arm
    assert "| blcs-zh | zh | de (close) | +0.0 [+0.0, +0.0] p=1.000" in text  # unseen languages, from F1
    assert "| ml:de,fr,pt,zh,ar p=0.5 |" in text  # code-switched queries, pooled over seeds
    cell = report.towers[0].cs_queries[("en", "ml:de,fr,pt,zh,ar p=0.5")]
    assert cell.estimate.n_seeds == 3 and cell.estimate.value < report.towers[0].primary[("en", "en")].estimate.value


def test_facts_round_trip_through_json(tmp_path):
    import json

    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    written = design_render.write(report, tmp_path / "out")
    back = design_report.from_json(json.loads((tmp_path / "out" / "experiment-2" / "report.json").read_text()))
    assert design_render.render(back).split("\n", 3)[3] == design_render.render(report).split("\n", 3)[3]
    assert written[0] == tmp_path / "out" / "README.md" and written[0].read_text() == design_render.render(report)


def test_delta_frame_orders_languages_close_to_distant(tmp_path):
    (tower,) = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",)).towers
    frame = design_report.delta_frame(tower)
    assert list(frame["arm"].unique()) == ["mlcs-de-fr-pt-zh-ar"]  # the headline arm present
    assert list(frame["lang"]) == ["en", "de", "pt", "fr", "cs", "ar", "zh"]  # display_order
    assert list(frame["group"]) == ["English", "close", "close", "close", "between", "distant", "distant"]
    every = design_report.delta_frame(tower, arms=["blcs-zh", "blcs-de"])
    assert set(every["arm"]) == {"blcs-zh", "blcs-de"} and len(every) == 14
    assert design_report.lang_order(["zh", "cs", "en", "pt"]) == ["en", "pt", "cs", "zh"]
    from csr_core.languages import display_order

    # one order everywhere: English and its caption sets, close, between, distant (by genetic distance), unknown
    assert display_order(["zh-x-f8k", "ar", "pl", "cs", "en-x-f8k", "ru", "zh", "de", "en", "img"]) == [
        "en", "en-x-f8k", "de", "cs", "ru", "ar", "zh", "zh-x-f8k", "pl", "img"]


def test_induced_lexicon_quality_comes_from_the_training_log(tmp_path):
    import json

    store = _store(tmp_path)
    log = tmp_path / "experiment-2" / "training_log.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"e5/ind-mlcs-de-fr-pt-zh-ar/s0": {"bli_p_at_1": {"de": 0.41, "zh": 0.2},
                                                                 "bli_n": {"de": 900, "zh": 850}}}))
    report = design_report.build_report(store, "experiment-2", towers=("e5",))
    assert report.bli == {"de": (0.41, 900), "zh": (0.2, 850)}
    assert "BLI precision@1 against MUSE" in design_render.render(report) and "de 41.0 % (n = 900)" in \
        design_render.render(design_report.from_json(design_report.to_json(report)))


def test_leaderboard_rows_are_tower_x_arm_with_group_means(tmp_path):
    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    board = design_report.leaderboard(report)
    (tower,) = report.towers
    assert list(board["arm"]) == tower.arms and (board["tower"] == "e5").all()
    row = board.set_index("arm").loc["blcs-zh"]
    assert row["t2i R@10 zh"] == round(tower.primary[("blcs-zh", "zh")].estimate.value, 1)
    assert row["t2i R@10 distant mean"] == round((tower.primary[("blcs-zh", "zh")].estimate.value
                                                   + tower.primary[("blcs-zh", "ar")].estimate.value) / 2, 1)
    assert "i2t R@10 de sd" in board.columns and row["seeds"] == 3


def test_experiment_1_is_read_with_the_same_analysis(tmp_path):
    """Run set "" (the first grid): its explicit arm/seed runs only, family F1 without F2 (no distant language in
    the design), the answer stated from F1, the page written to experiment-1.md beside its facts."""
    from testsupport import _planted_ranks, _write_planted
    import numpy as np

    store = _store(tmp_path)
    rng = np.random.default_rng(1)
    for seed in range(2):
        en = _planted_ranks({lang: 0.3 for lang in LANGS}, rng)
        base = dict(zip(en["query_id"], en["rank"] == 1))
        _write_planted(store, f"csr-mini:en/s{seed}", "en", seed, en, "")
        _write_planted(store, f"csr-mini:blcs-cs/s{seed}", "blcs-cs", seed,
                       _planted_ranks({lang: 0.4 if lang == "cs" else 0.0 for lang in LANGS}, rng, base), "")
    # a page's evaluation of the default model (not an explicit arm/seed name) is no evidence of the grid
    _write_planted(store, "csr-mini", "en", 0, _planted_ranks({lang: 1.0 for lang in LANGS}, rng), "")
    report = design_report.build_report(store, "", towers=("minilm",))
    (tower,) = report.towers
    assert tower.arms == ["en", "blcs-cs"] and tower.seeds["en"] == [0, 1]
    assert tower.langs == ["en", "de", "fr", "cs"] and not tower.f2
    f1 = {(t.arm, t.target): t for t in tower.f1}
    assert f1[("blcs-cs", "cs")].significant and not f1[("blcs-cs", "de")].significant
    assert tower.primary[("en", "en")].estimate.value < 50  # the all-hits `csr-mini` run was not read
    text = design_render.render(report)
    assert "significant gains over EN-only for blcs-cs on cs;" in text and "Family F2" not in text
    assert "cs (between)" in text and "Superseded by experiment 2" in text
    paths = design_render.write(report, tmp_path / "out")
    assert [p.relative_to(tmp_path / "out").as_posix() for p in paths] == ["experiment-1.md", "experiment-1/report.json"]


def test_report_only_command_writes_the_page_and_its_facts(tmp_path):
    import subprocess
    import sys

    _store(tmp_path)
    done = subprocess.run([sys.executable, "-m", "csr_core", "experiment", "--design", "experiment-2", "--report-only",
                           "--towers", "e5", "--results", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Family F2 (the question)" in (tmp_path / "README.md").read_text(encoding="utf-8")
    facts = design_report.from_json(json.loads((tmp_path / "experiment-2" / "report.json").read_text()))
    assert [t.tower for t in facts.towers] == ["e5"]


def test_the_whole_report_as_one_self_contained_html_file(tmp_path):
    from html.parser import HTMLParser

    from csr_core.training import design_html

    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    page = design_html.render_html(report)

    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

    parsed = Tags()
    parsed.feed(page)
    assert parsed.tags.count("table") >= 2  # the leaderboard and the README's tables
    assert page.count("plotly.js v") == 1  # plotly.js inlined once: interactive offline, no CDN
    assert page.count('class="plotly-graph-div"') == len(design_html.delta_charts(report)) == 1
    assert not re.search(r"<script[^>]*\bsrc=", page)  # no external script: nothing is fetched
    text = re.sub(r"<[^>]+>", "", page)
    for line in design_render.answer_lines(report):  # the answer, as the README states it (markup aside)
        for phrase in re.findall(r"[A-Za-z][\w ,()-]{12,}", line.replace("**", "").replace("`", "")):
            assert phrase in text, phrase
    assert design_report.leaderboard(report)["arm"].iloc[0] in page


def test_html_escapes_markup_in_report_text(monkeypatch, tmp_path):
    from csr_core.training import design_html

    report = design_report.build_report(_store(tmp_path), "experiment-2", towers=("e5",))
    monkeypatch.setattr(design_render, "render", lambda r: "# t\n\n<script>alert(1)</script> <b>x</b>\n")
    page = design_html.render_html(report)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
