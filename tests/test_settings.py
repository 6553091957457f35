"""The settings registry is the one home of the settings: every layer reads it, none re-lists them."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from csr_core import settings as S
from csr_core.errors import DataError

REPO = Path(__file__).resolve().parent.parent


def test_every_setting_resolves_its_runner_and_layout():
    for spec in S.SETTINGS.values():
        from csr_core import evaluate

        assert callable(getattr(evaluate, spec.runner)), spec.name
        assert spec.layout in S.LAYOUTS and spec.directions
    assert S.IMAGE_SETTINGS == tuple(n for n in S.SETTING_NAMES if n != "cross")


def test_unknown_and_empty_settings_are_refused_with_the_choices():
    with pytest.raises(DataError, match="unknown setting 'mono'.*monolingual, cross"):
        S.get_setting("mono")
    with pytest.raises(DataError, match=r"unknown setting\(s\) \['x'\]"):
        S.check_settings(["monolingual", "x"])
    with pytest.raises(DataError, match="no setting chosen"):
        S.check_settings([])


def test_results_schema_and_cli_take_the_settings_from_the_registry():
    from csr_core.commands import eval as eval_command
    from csr_core.errors import ResultsError
    from csr_core.results import make_rows

    assert all(name in eval_command.HELP for name in S.SETTING_NAMES)
    record = dict(run_id="r", source="ours", model="m", dataset="d", split="test", setting="monolingual",
                  query_lang="en", doc_lang="img", direction="t2i", metric="recall", k=1, value=50.0, n_queries=2)
    assert len(make_rows([record])) == 1
    with pytest.raises(ResultsError, match="setting"):
        make_rows([{**record, "setting": "not-a-setting"}])


def test_pages_hold_no_per_setting_branches_or_lists():
    pattern = re.compile(r"setting\s*(==|in\s*\()|\"cs-queries\"|\"multilingual\"")
    offenders = [f"{p.name}:{i}" for p in sorted((REPO / "app_pages").glob("*.py"))
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def _ranks() -> pd.DataFrame:
    rows = [("monolingual", "de", "img", "t2i", "", float("nan"), "", "a#0", 3),
            ("monolingual", "img", "de", "i2t", "", float("nan"), "", "a", 1),
            ("cross", "en", "de", "t2t", "", float("nan"), "", "a#0", 2),
            ("cs-queries", "en", "img", "t2i", "bl", 0.5, "de", "a#0", 7),
            ("cs-queries", "en", "img", "t2i", "bl", 1.0, "de", "a#0", 9)]
    return pd.DataFrame(rows, columns=["setting", "query_lang", "doc_lang", "direction", "cs_mode", "cs_p",
                                       "cs_langs", "query_id", "rank"])


def test_cell_masks_select_exactly_one_cell():
    ranks = _ranks()
    pick = lambda name, **kw: ranks.loc[S.get_setting(name).cell_mask(ranks, **kw), "rank"].tolist()  # noqa: E731
    assert pick("monolingual", direction="t2i", lang="de") == [3]
    assert pick("monolingual", direction="i2t", lang="de") == [1]
    assert pick("cross", direction="t2t", lang="en", doc_lang="de") == [2]
    assert pick("cross", direction="t2t", lang="en", doc_lang="fr") == []
    assert pick("cs-queries", direction="t2i", lang="en", cs_mode="bl", cs_langs="de", cs_p=1.0) == [9]
    cs = S.get_setting("cs-queries")
    assert cs.caption_lang("de") == "en" and S.get_setting("cross").caption_lang("de") == "de"
    assert cs.cell_of("bl de", "0.5", ranks.iloc[3]) == {"lang": "en", "cs_mode": "bl", "cs_langs": "de", "cs_p": 0.5}
    assert S.get_setting("cross").cell_of("en", "de", None) == {"lang": "en", "doc_lang": "de"}
    assert S.get_setting("monolingual").cell_of("run", "fr", None) == {"lang": "fr"}
