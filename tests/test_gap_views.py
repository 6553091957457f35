"""The gap-to-English view (csr_core.gap_views) and `python -m csr_core gaps`, on hand-made ranks and shipped runs."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from csr_core.gap_views import contrast_languages, default_series, gap_view
from csr_core.paths import REPO_ROOT
from csr_core.results import ResultsStore, with_query_columns

SHIPPED = ResultsStore(REPO_ROOT / "results")  # the runs committed with the repository

PHOTOS = [f"p{i}" for i in range(12)]


def _mono(lang: str, ranks_by_photo: dict[str, list[int]]) -> list[dict]:
    """t2i monolingual rank rows: caption j of photo p in `lang` ranked its photo at ranks_by_photo[p][j]."""
    return [{"setting": "monolingual", "query_lang": lang, "doc_lang": lang, "direction": "t2i", "cs_mode": "",
             "cs_p": math.nan, "cs_langs": "", "query_id": f"{photo}#{j}", "rank": rank}
            for photo, ranks in ranks_by_photo.items() for j, rank in enumerate(ranks)]


def _ranks() -> pd.DataFrame:
    """en and de hit every photo at K=1 except where noted; zh (3 captions per photo) and a small zh-x-f8k set."""
    rng = np.random.default_rng(0)
    rows = _mono("en", {p: [1] for p in PHOTOS})
    rows += _mono("de", {p: [1 if i % 2 else 5] for i, p in enumerate(PHOTOS)})  # half the photos missed
    rows += _mono("zh", {p: [int(r) for r in rng.choice([1, 9], size=3)] for p in PHOTOS})
    rows += _mono("zh-x-f8k", {p: [1, 9] for p in PHOTOS[:3]})
    return with_query_columns(pd.DataFrame(rows))


MANIFEST = {"dataset": {"alignments": [["de", "en"]],
                        "languages": {"de": {"provenance": "human"}, "zh": {"provenance": "human-independent"}}}}


def test_contrast_uses_each_languages_main_caption_set():
    used, notes = contrast_languages(["en", "de", "zh", "zh-x-f8k", "en-x-f8k", "ar-x-mt"])
    assert used == ["en", "de", "zh", "ar-x-mt"]  # ar-x-mt is Arabic's only caption set here: it stays
    assert len(notes) == 2 and any(n.startswith("zh-x-f8k left out") for n in notes)


def test_gap_view_pairs_groups_and_contrasts_by_photo():
    ranks = _ranks()
    view = gap_view(ranks, MANIFEST, k=1, n_resamples=200)
    table = view.gaps.set_index("lang")
    assert table.loc["de", "paired"] == "caption" and table.loc["zh", "paired"] == "photo"
    assert table.loc["de", "gap"] == pytest.approx(50.0)  # en hits all 12 photos, de 6 of them
    zh_hits = ranks[(ranks["query_lang"] == "zh")].assign(hit=lambda f: f["rank"] <= 1)
    zh_photo_mean = 100 * zh_hits.groupby("image_id")["hit"].mean().mean()
    assert table.loc["zh", "gap"] == pytest.approx(100.0 - zh_photo_mean)
    assert table.loc["de", "provenance"] == "human" and table.loc["zh-x-f8k", "provenance"] == ""
    assert view.groups["de"] == "close" and view.groups["zh"] == view.groups["zh-x-f8k"] == "distant"
    bars = view.group_table.set_index("group")["value"]
    assert set(bars.index) == {"close", "distant"}  # zh-x-f8k (3 photos) would have cut the contrast to 3 photos
    assert view.group_test["n"] == len(PHOTOS)
    assert view.group_test["diff"] == pytest.approx(bars["close"] - bars["distant"])
    assert view.correlation.languages == ("de", "zh")  # one point per language
    assert any("zh-x-f8k left out" in note for note in view.notes)
    regrouped = gap_view(ranks, MANIFEST, k=1, n_resamples=200, overrides={"de": "distant"})
    assert regrouped.groups["de"] == "distant" and "close" not in set(regrouped.group_table["group"])


def test_default_series_prefers_runs_with_more_languages_then_en_only_arms():
    rows = pd.DataFrame({"series": ["a", "a", "b", "b", "b", "c", "c", "c"],
                         "query_lang": ["en", "de", "en", "de", "zh", "en", "de", "zh"],
                         "doc_lang": ["en", "de", "en", "de", "zh", "en", "de", "zh"], "direction": "t2i",
                         "setting": "monolingual", "train_arm": ["en", "en", "mlcs", "mlcs", "mlcs", "en", "en", "en"]})
    assert default_series(rows, n=2) == ["c", "b"]
    assert default_series(rows.iloc[0:0]) == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "csr_core", "gaps", "--out", str(SHIPPED.root), *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_pairs_of_a_shipped_xtd10_run_match_a_spearman_of_its_own_table():
    from scipy.stats import spearmanr

    runs = [m for m in SHIPPED.runs() if m["params"]["dataset"] == "xtd10"]
    assert runs, "the shipped XTD10 runs are part of the repository"
    done = _cli("--run", runs[0]["run_id"], "--pairs")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["pair"])
    table = [line.split() for line in lines[header + 1:header + 46]]
    assert len({row[0] for row in table}) == 45  # 10 languages, every unordered pair once
    columns = lines[header].split()
    score, distance = ([float(row[columns.index(c)]) for row in table] for c in ("score", "distance"))
    rho = float(spearmanr(distance, score).statistic)
    printed = next(line for line in lines if line.startswith("Spearman ρ"))
    assert printed.startswith(f"Spearman ρ = {rho:+.2f}") and "n = 45 pairs" in printed
    mantel = next(line for line in lines if line.startswith("Mantel test"))
    assert f"ρ = {rho:+.2f}" in mantel and "10 languages" in mantel


def test_cli_names_a_missing_run_and_a_bad_override():
    missing = _cli("--run", "20000101T000000Z-00000000")
    assert missing.returncode == 2 and "no run '20000101T000000Z-00000000'" in missing.stderr
    runs = [m for m in SHIPPED.runs() if "monolingual" in m["params"]["settings"]]
    bad = _cli("--run", runs[0]["run_id"], "--groups", "cs:close")
    assert bad.returncode == 2 and "cs:close" in bad.stderr and "Traceback" not in bad.stderr


def test_the_shipped_distant_languages_page_is_what_its_command_writes_from_the_shipped_runs():
    from csr_core.gap_report import render

    shipped = (REPO_ROOT / "results" / "distant-languages.md").read_text(encoding="utf-8")
    fresh = render(SHIPPED)

    def body(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("Generated by")]

    assert body(fresh) == body(shipped)
    # and it answers the question: every re-evaluated run has a close, a between and a distant group on 237 photos
    group_rows = [line for line in shipped.splitlines() if line.startswith("| csr-mini") and line.endswith("| 237 |")]
    assert len(group_rows) >= 2 and all(line.count("[") >= 3 for line in group_rows)
