"""Typology: code normalisation, names/scripts/families, URIEL distances, grouping and gap correlation.

All of it must work offline: an autouse fixture makes any socket connection fail the test.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csr_core import languages as L
from csr_core.errors import DataError

PAPER_LANGS = L.PAPER_GROUPS["close"] + L.PAPER_GROUPS["distant"]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Typology is computed from installed data only: any connection attempt is a failure."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------------------------------------ normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("de", "de"),
        ("deu", "de"),  # ISO 639-3 / 639-2T
        ("ger", "de"),  # ISO 639-2B
        ("DEU", "de"),
        (" de ", "de"),
        ("arb_Arab", "ar"),  # FLORES: standard member of a macrolanguage -> the macrolanguage
        ("ARB_ARAB", "ar"),
        ("acm_Arab", "acm"),  # other members keep their own code
        ("zho_Hans", "zh"),  # default script dropped
        ("zho_Hant", "zh-Hant"),  # non-default script kept
        ("zh_hant", "zh-Hant"),
        ("cmn", "zh"),
        ("yue_Hant", "yue"),
        ("jpn_Jpan", "ja"),
        ("kor_Hang", "ko"),  # Hangul counts as Korean's composite default (Kore)
        ("kas_Deva", "ks-Deva"),
        ("kas_Arab", "ks"),
        ("srp_Cyrl", "sr"),
        ("jp", "ja"),  # XTD10 quirk
        ("JP", "ja"),
        ("pt-BR", "pt-BR"),  # region kept
        ("pt_br", "pt-BR"),
        ("zh-Hant-TW", "zh-TW"),
        ("prs_Arab", "fa-AF"),  # CLDR: Dari = Persian (Afghanistan)
        ("pes_Arab", "fa"),
        ("twi_Latn", "tw"),  # own ISO 639-1 code wins over the macrolanguage
        ("aka_Latn", "ak"),
        ("iw", "he"),  # deprecated
        ("en", "en"),
        ("eng", "en"),
    ],
)
def test_normalize_forms(raw, expected):
    assert L.normalize_lang(raw) == expected


def test_normalize_is_idempotent():
    for raw in ["arb_Arab", "zho_Hant", "pt-BR", "kas_Deva", "prs_Arab", "jp", "acm_Arab"]:
        canon = L.normalize_lang(raw)
        assert L.normalize_lang(canon) == canon


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("xx", "unknown language code 'xx'"),
        ("filenames", "'filenames'"),
        ("eng_captions", "captions"),
        ("cz", "'cs'"),  # country code: the error names the language to use
        ("dk", "'da'"),
        ("mul", "not one language"),
        ("und", "not one language"),
        ("sla", "group of languages"),
        ("qaa", "private-use"),
        ("en-x-foo", "extensions"),
        ("", "empty"),
        ("German", "did you mean 'de'"),
    ],
)
def test_normalize_errors_are_clear(raw, fragment):
    with pytest.raises(DataError) as err:
        L.normalize_lang(raw)
    assert fragment in str(err.value)
    if raw:
        assert repr(raw) in str(err.value) or raw in str(err.value)


@pytest.mark.parametrize("bad", [None, 3, ["de"]])
def test_normalize_rejects_non_strings(bad):
    with pytest.raises(DataError, match="must be a string"):
        L.normalize_lang(bad)


def test_normalize_langs_catches_collisions():
    assert L.normalize_langs(["deu", "fr", "deu"]) == {"deu": "de", "fr": "fr"}
    with pytest.raises(DataError, match="'zho_Hans' and 'zh' both normalise to 'zh'"):
        L.normalize_langs(["zho_Hans", "zh"])


def test_every_flores_file_of_flickr30k_200(real_data):
    """Every language file of flickr30k-200 normalises, distinctly; the two non-language files fail clearly."""
    names = sorted(p.stem for p in (real_data / "flickr30k-200").glob("*.txt"))
    good, bad = {}, {}
    for name in names:
        try:
            good[name] = L.normalize_lang(name)
        except DataError as exc:
            bad[name] = str(exc)
    assert len(names) == 203
    assert len(good) == 201
    assert set(bad) == {"eng_captions", "filenames"}
    assert all(name in msg for name, msg in bad.items())
    # 201 FLORES codes -> 201 distinct languages: no two files merge
    assert len(L.normalize_langs(good)) == 201 and len(set(good.values())) == 201
    assert good["arb_Arab"] == "ar" and good["zho_Hans"] == "zh" and good["zho_Hant"] == "zh-Hant"
    assert good["eng_Latn"] == "en" and good["jpn_Jpan"] == "ja" and good["kor_Hang"] == "ko"
    assert good["taq_Latn"] == "taq" and good["taq_Tfng"] == "taq-Tfng"
    # canonical codes are ISO 639-1 where one exists: every 2-letter language is its own 639-1 code
    assert sum(len(c.split("-")[0]) == 2 for c in good.values()) > 120


def test_xtd10_file_codes(shared_data):
    codes = sorted(
        re.fullmatch(r"test_1kcaptions_(\w+)\.txt", p.name).group(1)
        for p in (shared_data / "xtd10").rglob("test_1kcaptions_*.txt")
    )
    canon = L.normalize_langs(codes)
    assert "jp" in canon and canon["jp"] == "ja"
    assert set(canon.values()) == {"de", "en", "es", "fr", "it", "ja", "ko", "pl", "ru", "tr", "zh"}


# ------------------------------------------------------------------------------------------------ info


@pytest.mark.parametrize(
    ("code", "name", "script", "family"),
    [
        ("en", "English", "Latn", "Indo-European"),
        ("deu", "German", "Latn", "Indo-European"),
        ("arb_Arab", "Arabic", "Arab", "Afro-Asiatic"),
        ("jp", "Japanese", "Jpan", "Japonic"),
        ("ko", "Korean", "Kore", "Koreanic"),
        ("tr", "Turkish", "Latn", "Turkic"),
        ("zho_Hant", "Chinese (Traditional)", "Hant", "Sino-Tibetan"),
        ("hi", "Hindi", "Deva", "Indo-European"),
        ("eu", "Basque", "Latn", "Basque"),  # an isolate is its own family (Glottolog)
        ("acm_Arab", "Mesopotamian Arabic", "Arab", "Afro-Asiatic"),  # script from the code itself
    ],
)
def test_language_info(code, name, script, family):
    info = L.language_info(code)
    assert info == L.LanguageInfo(code=L.normalize_lang(code), name=name, script=script, family=family)


def test_language_info_unknown_script_is_none_not_a_guess():
    # no CLDR default for South Azerbaijani: say nothing rather than borrow Azerbaijani's Latin
    assert L.language_info("azb").script is None
    assert L.language_info("azb_Arab").script == "Arab"


# ------------------------------------------------------------------------------------------------ URIEL


def test_genetic_distance_orders_close_and_distant():
    de, ja = L.uriel_distance("en", "de", "genetic"), L.uriel_distance("en", "ja", "genetic")
    assert 0 < de < ja <= 1
    assert L.uriel_distance("en", "nl", "genetic") < L.uriel_distance("en", "ar", "genetic")


def test_distances_in_range_and_symmetric():
    for kind in ("syntactic", "featural", "inventory", "geographic", "genetic"):
        for a, b in [("en", "de"), ("fr", "ja"), ("ar", "ru"), ("zh", "ko"), ("tr", "hi")]:
            d = L.uriel_distance(a, b, kind)
            assert 0.0 <= d <= 1.0, (kind, a, b, d)
            assert d == L.uriel_distance(b, a, kind)
        assert L.uriel_distance("de", "deu", kind) == 0.0


def test_syntactic_distances_of_paper_languages_in_unit_interval():
    values = [L.uriel_distance("en", lang, "syntactic") for lang in PAPER_LANGS]
    assert all(0.0 < v < 1.0 for v in values)
    assert len(set(values)) > 5  # real, varied data, not a constant


def test_distance_matches_urie_vectors_computed_by_hand():
    """Recompute en-de / en-ja syntactic distance straight from URIEL's features.npz (union over sources,
    features both languages know, angular distance) and compare: the distances really are URIEL's."""
    import urielplus

    path = Path(urielplus.__file__).parent / "database" / "original_uriel" / "features.npz"
    with np.load(path, allow_pickle=True) as npz:
        feats = [str(f) for f in npz["feats"]]
        langs = {str(code): i for i, code in enumerate(npz["langs"])}
        data = npz["data"]
    cols = [i for i, f in enumerate(feats) if f.startswith("S_")]

    def vec(code):
        block = data[langs[code]][cols]  # features x sources
        known = block > -1
        return np.where(known.any(axis=1), np.where(known, block, -np.inf).max(axis=1), np.nan)

    for other, iso in [("de", "deu"), ("ja", "jpn")]:
        u, v = vec("eng"), vec(iso)
        shared = ~np.isnan(u) & ~np.isnan(v)
        cos = np.clip(u[shared] @ v[shared] / (np.linalg.norm(u[shared]) * np.linalg.norm(v[shared])), -1, 1)
        expected = round(2 * math.acos(cos) / math.pi, 4)
        assert L.uriel_distance("en", other, "syntactic") == pytest.approx(expected, abs=1e-4)


def test_macrolanguage_uses_the_better_covered_uriel_entry():
    # URIEL has Arabic both as 'ara' and 'arb'; genetic lineage is richer on arb, syntax on ara
    assert L.uriel_code("ar", "genetic") == "arb"
    assert L.uriel_code("ar", "syntactic") == "ara"
    assert L.uriel_code("pt-BR", "syntactic") == "por"  # region falls back to the language


def test_missing_uriel_data_is_a_clear_error():
    with pytest.raises(DataError, match="no lineage"):
        L.uriel_distance("en", "tlh", "genetic")  # Klingon: in URIEL, no family
    with pytest.raises(DataError, match="unknown URIEL distance kind"):
        L.uriel_distance("en", "de", "lexical")


def test_distance_table():
    df = L.distance_table(["de", "deu", "jp", "nl", "en"], pivot="eng")
    assert list(df.index) == ["de", "ja", "nl", "en"]
    assert list(df.columns) == list(L.DISTANCE_KINDS)
    assert df.loc["en"].eq(0).all()
    assert df.loc["de", "genetic"] < df.loc["ja", "genetic"]
    values = df.to_numpy().ravel()
    finite = values[np.isfinite(values)]
    assert ((finite >= 0) & (finite <= 1)).all()
    # URIEL has no phonological features for Dutch: NaN with the reason recorded
    assert math.isnan(df.loc["nl", "phonological"])
    assert "nl/phonological" in df.attrs["missing"]
    assert df.attrs["pivot"] == "en" and "urielplus" in df.attrs["source"]
    assert list(L.distance_table(["de"], kinds=["syntactic"]).columns) == ["syntactic"]


@pytest.fixture
def computed(monkeypatch):
    """The computed path (URIEL loaded, the disk memo): the shipped table switched off."""
    from csr_core.languages import uriel

    monkeypatch.setattr(uriel, "_shipped", lambda: {})
    L.clear_caches()
    yield
    L.clear_caches()


def test_concurrent_first_calls_agree(computed):
    results, errors = [], []

    def work():
        try:
            results.append(L.uriel_distance("en", "ko", "syntactic"))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4 and len(set(results)) == 1
    assert L._load_uriel.cache_info().misses == 1  # the table was loaded once


def test_fresh_process_writes_nothing_and_keeps_logging(tmp_path):
    """A fresh interpreter computing distances leaves urielplus' package folder and the cache untouched, and
    importing urielplus (which calls logging.basicConfig at import) does not reconfigure the root logger."""
    code = r"""
import json, logging, os, sys
from pathlib import Path
import importlib.util
pkg = Path(importlib.util.find_spec("urielplus").origin).parent
def snap():
    return sorted((str(p.relative_to(pkg)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
before = snap()
from csr_core import languages as L
L.distance_table(["fi", "hu", "sw"], kinds=["genetic", "syntactic", "geographic"])  # not shipped: computed
L.language_info("arb_Arab")
root = logging.getLogger()
print(json.dumps({"same": snap() == before, "handlers": len(root.handlers), "level": root.level}))
"""
    cache = tmp_path / "cache"
    env = dict(os.environ, CSR_CACHE_DIR=str(cache))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report == {"same": True, "handlers": 0, "level": 30}
    written = [p.relative_to(cache).parts for p in cache.rglob("*") if p.is_file()]
    assert written and all(parts[0] == "typology" for parts in written), written  # only the distance memo
    assert "INFO" not in out.stderr  # urielplus' per-call INFO logs stay silent


def test_disk_memo_is_read_back_and_survives_corruption(computed):
    real = L.uriel_distance("en", "fr", "genetic")
    path = L._disk_cache().path()
    assert path.is_file() and path.parent.name == "typology"
    stored = json.loads(path.read_text())
    assert stored["distances"]["genetic|eng|fra"] == real
    # a new process (memory cleared) trusts the file: prove it is read by planting a different value
    stored["distances"]["genetic|eng|fra"] = 0.125
    path.write_text(json.dumps(stored))
    L.clear_caches()
    assert L.uriel_distance("fr", "en", "genetic") == 0.125
    # a corrupt file is ignored and rewritten with the real value
    path.write_text("{not json")
    L.clear_caches()
    assert L.uriel_distance("en", "fr", "genetic") == real
    assert json.loads(path.read_text())["distances"]["genetic|eng|fra"] == real
    L.clear_caches()


def test_shipped_table_is_current_and_equals_the_computed_distances(monkeypatch):
    """The shipped table was computed with the installed urielplus (else it is silently unused and a fresh
    dashboard recomputes it), covers every pair of SHIPPED_LANGS and kind, and agrees with urielplus itself."""
    from csr_core.languages import uriel

    raw = json.loads(uriel.SHIPPED_TABLE.read_text(encoding="utf-8"))
    assert raw["urielplus"] == uriel._urielplus_version(), "run: python -m csr_core gaps --write-uriel-table"
    codes = sorted(uriel.SHIPPED_LANGS)
    assert len(raw["distances"]) == len(uriel.ALL_KINDS) * len(codes) * (len(codes) + 1) // 2
    shipped = uriel._shipped()
    rng = np.random.default_rng(7)
    for key in rng.choice(sorted(shipped), 12, replace=False):
        kind, a, b = key.split("|")
        try:
            live: float | str = uriel._computed_distance(a, b, kind)
        except DataError as exc:
            live = str(exc)
        assert shipped[key] == live, key
    monkeypatch.setattr(uriel, "_computed_distance", lambda *a: pytest.fail("computed a shipped distance"))
    assert L.uriel_distance("zh-x-f8k", "en", "syntactic") == shipped["syntactic|en|zh"]
    with pytest.raises(DataError, match="phonological"):
        L.uriel_distance("cs", "ar", "phonological")  # a shipped absence is the same clear error


def test_a_table_of_another_urielplus_version_is_ignored(tmp_path, monkeypatch):
    from csr_core.languages import uriel

    table = tmp_path / "uriel_distances.json"
    uriel.write_shipped_table(table, langs=["en", "de"])
    doc = json.loads(table.read_text(encoding="utf-8"))
    assert sorted(doc["distances"]) == sorted(f"{k}|{p}" for k in uriel.ALL_KINDS for p in ("de|de", "de|en", "en|en"))
    doc["distances"]["genetic|de|en"] = 0.5
    monkeypatch.setattr(uriel, "SHIPPED_TABLE", table)
    table.write_text(json.dumps(doc), encoding="utf-8")
    uriel._shipped.cache_clear()
    assert L.uriel_distance("de", "en") == 0.5  # read from the (planted) table
    doc["urielplus"] = "0.0.1"
    table.write_text(json.dumps(doc), encoding="utf-8")
    uriel._shipped.cache_clear()
    assert L.uriel_distance("de", "en") == uriel._computed_distance("de", "en", "genetic") != 0.5
    table.write_text("{broken", encoding="utf-8")
    uriel._shipped.cache_clear()
    assert uriel._shipped() == {}  # unreadable: computed, with a warning
    uriel._shipped.cache_clear()


# ------------------------------------------------------------------------------------------------ groups


def test_paper_groups_by_default():
    groups = L.group_languages(["de", "pt-BR", "jp", "zho_Hant", "en", "sw"])
    assert groups == {
        "de": "close",
        "pt-BR": "close",
        "jp": "distant",
        "zho_Hant": "distant",
        "en": "unknown",
        "sw": "unknown",
    }
    assert set(L.group_languages(PAPER_LANGS).values()) == {"close", "distant"}


def test_groups_by_threshold():
    d_de = L.uriel_distance("en", "de", "genetic")
    d_nl = L.uriel_distance("en", "nl", "genetic")
    assert d_de < d_nl
    groups = L.group_languages(["de", "nl", "ja", "tlh"], threshold=d_de, kind="genetic")
    assert groups == {"de": "close", "nl": "distant", "ja": "distant", "tlh": "unknown"}
    syn = L.group_languages(["de", "ja"], threshold=0.5, kind="syntactic")
    assert syn == {"de": "close", "ja": "distant"}
    for bad in (1.5, -0.1, "x"):
        with pytest.raises(DataError, match="threshold"):
            L.group_languages(["de"], threshold=bad)


# ------------------------------------------------------------------------------------------------ correlation


def test_gap_correlation_known_signs():
    dist = {lang: L.uriel_distance("en", lang, "syntactic") for lang in PAPER_LANGS}
    rising = {lang: 40 * d + (0.3 if i % 2 else -0.3) for i, (lang, d) in enumerate(dist.items())}
    res = L.gap_correlation(rising, kind="syntactic")
    assert res.n == len(PAPER_LANGS)
    assert res.pearson_r > 0.9 and res.spearman_rho > 0.8
    assert res.pearson_p < 0.01 and res.spearman_p < 0.01
    falling = pd.Series({lang: -g for lang, g in rising.items()})
    res2 = L.gap_correlation(falling, kind="syntactic")
    assert res2.pearson_r == pytest.approx(-res.pearson_r)
    assert res2.spearman_rho == pytest.approx(-res.spearman_rho)


def test_gap_correlation_paper_like_example():
    # close languages lose little, distant ones a lot: the gap grows with genetic distance
    gaps = {"de": 2.0, "nl": 3.0, "fr": 4.0, "es": 3.5, "ja": 15.0, "ko": 14.0, "ar": 12.0, "tr": 11.0}
    res = L.gap_correlation(gaps, kind="genetic")
    assert res.n == 8 and res.pearson_r > 0.5 and res.spearman_rho > 0.5
    assert "indicative" in res.note  # fewer than 10 languages


def test_gap_correlation_degenerate_inputs():
    few = L.gap_correlation({"de": 1.0, "ja": 9.0, "en": 0.0})
    assert few.n == 2 and math.isnan(few.pearson_r) and math.isnan(few.spearman_p)
    assert "at least 3" in few.note
    flat = L.gap_correlation({"de": 5.0, "ja": 5.0, "ko": 5.0, "ar": 5.0})
    assert math.isnan(flat.pearson_r) and "equal" in flat.note
    dropped = L.gap_correlation({"de": 1.0, "ja": 9.0, "ko": 8.0, "nl": float("nan"), "tlh": 3.0})
    assert dropped.n == 3 and dropped.languages == ("de", "ja", "ko")
    assert "nl (no gap)" in dropped.note and "tlh (no URIEL genetic data)" in dropped.note
    with pytest.raises(DataError, match="two entries"):
        L.gap_correlation({"ja": 1.0, "jp": 2.0, "de": 0.5})
    with pytest.raises(DataError, match="not a number"):
        L.gap_correlation({"ja": "high", "de": 0.5, "ko": 1.0})


# ------------------------------------------------------------------------------------------------ caption-set keys


@pytest.mark.parametrize(
    ("raw", "key", "typology", "base"),
    [
        ("ZH_x_F8K", "zh-x-f8k", "zh", "zh"),
        ("zh-x-f8k", "zh-x-f8k", "zh", "zh"),
        ("en-X-f8k", "en-x-f8k", "en", "en"),
        ("zho_Hans-x-f8k", "zh-x-f8k", "zh", "zh"),  # the language part is normalised like any code
        ("zh-Hant-x-f8k", "zh-Hant-x-f8k", "zh-Hant", "zh"),  # a non-default script is kept
        ("zh-x-f8k-v2", "zh-x-f8k-v2", "zh", "zh"),  # several private subtags
        ("deu", "de", "de", "de"),  # no suffix: just the canonical code
        ("pt_BR", "pt-BR", "pt-BR", "pt"),
    ],
)
def test_caption_set_key_canonicalises_and_keeps_the_suffix(raw, key, typology, base):
    assert L.caption_set_key(raw) == key
    assert L.caption_set_key(key) == key  # idempotent
    assert L.typology_lang(raw) == typology
    assert L.base_lang(raw) == base


def test_two_caption_sets_of_one_language_stay_apart():
    assert L.caption_set_key("en") != L.caption_set_key("en-x-f8k")
    assert L.typology_lang("en") == L.typology_lang("en-x-f8k") == "en"
    info = L.language_info("ZH_x_F8K")
    plain = L.language_info("zh")
    assert info.code == "zh-x-f8k"
    assert (info.name, info.script, info.family) == (plain.name, plain.script, plain.family)


@pytest.mark.parametrize("bad", ["zh-x-", "-x-f8k", "zh-x-toolongsuffix", "zh-x-f8k!", "zh-x-f8k--v2", "zh-x-f_"])
def test_malformed_caption_set_keys_are_refused(bad):
    with pytest.raises(DataError, match="caption-set key"):
        L.caption_set_key(bad)
    with pytest.raises(DataError):
        L.typology_lang(bad)


def test_unknown_language_in_a_caption_set_key_is_refused():
    with pytest.raises(DataError, match="unknown language code 'xx'"):
        L.caption_set_key("xx-x-f8k")
    with pytest.raises(DataError):
        L.normalize_lang("zh-x-f8k")  # normalize_lang itself still refuses private-use tags


def test_caption_set_keys_have_their_languages_distance():
    assert L.uriel_distance("de", "zh-x-f8k") == L.uriel_distance("de", "zh")
    assert L.uriel_distance("en", "en-x-f8k") == 0.0
    table = L.distance_table(["zh-x-f8k", "de"], kinds=("genetic",))
    assert list(table.index) == ["zh-x-f8k", "de"]
    assert table.loc["zh-x-f8k", "genetic"] == L.uriel_distance("en", "zh")


# ------------------------------------------------------------------------------------------------ default groups


def test_default_groups_are_the_papers_plus_czech_between():
    assert L.DEFAULT_GROUPS["close"] == L.PAPER_GROUPS["close"]
    assert L.DEFAULT_GROUPS["distant"] == L.PAPER_GROUPS["distant"]
    assert L.DEFAULT_GROUPS["between"] == ["cs"]
    langs = ["pt", "de", "fr", "zh", "ar", "cs", "en", "en-x-f8k", "zh-x-f8k", "pt-BR", "sw"]
    assert L.group_languages(langs) == {
        "pt": "close", "de": "close", "fr": "close", "pt-BR": "close",
        "zh": "distant", "ar": "distant", "zh-x-f8k": "distant",
        "cs": "between",
        "en": "unknown", "en-x-f8k": "unknown",  # the pivot's language: what the others are measured against
        "sw": "unknown",  # in no group
    }


def test_group_overrides_win_and_match_caption_set_then_language():
    groups = L.group_languages(["cs", "de", "zh", "zh-x-f8k"], overrides={"cs": "close"})
    assert groups == {"cs": "close", "de": "close", "zh": "distant", "zh-x-f8k": "distant"}
    # a language's override covers its caption sets and script variants ...
    by_lang = L.group_languages(["zh", "zh-x-f8k", "zh-Hant"], overrides={"zh": "between"})
    assert by_lang == {"zh": "between", "zh-x-f8k": "between", "zh-Hant": "between"}
    # ... a caption set's covers that set only, and keys are canonicalised first
    by_set = L.group_languages(["zh", "zh-x-f8k"], overrides={"ZH_x_F8K": "close"})
    assert by_set == {"zh": "distant", "zh-x-f8k": "close"}
    assert L.group_languages(["cs"], overrides={"ces": "distant"}) == {"cs": "distant"}
    # overrides win over the threshold rule too
    d_de = L.uriel_distance("en", "de", "genetic")
    assert L.group_languages(["de"], threshold=d_de, kind="genetic") == {"de": "close"}
    assert L.group_languages(["de"], threshold=d_de, kind="genetic", overrides={"de": "distant"}) == {"de": "distant"}


@pytest.mark.parametrize("bad", [{"cs": "near"}, {"cs": "Close"}, {"cs": ""}])
def test_bad_group_override_names_raise(bad):
    with pytest.raises(DataError, match="must be one of"):
        L.group_languages(["cs"], overrides=bad)


def test_group_override_with_an_unknown_code_raises():
    with pytest.raises(DataError, match="'xx'"):
        L.group_languages(["cs"], overrides={"xx": "close"})


def test_parse_group_overrides():
    assert L.parse_group_overrides("cs=close, pl=between") == {"cs": "close", "pl": "between"}
    assert L.parse_group_overrides(" ces = distant ,, ZH_x_F8K=unknown, ") == {"cs": "distant", "zh-x-f8k": "unknown"}
    assert L.parse_group_overrides("") == {}
    assert L.parse_group_overrides(" , ") == {}
    parsed = L.parse_group_overrides("cs=close")
    assert L.group_languages(["cs"], overrides=parsed) == {"cs": "close"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("cs", "<language>=<group>"), ("=close", "<language>=<group>"), ("cs=close, de", "'de'"),
     ("cs=nearby", "must be one of"), ("xx=close", "'xx'")],
)
def test_parse_group_overrides_errors(text, fragment):
    with pytest.raises(DataError) as err:
        L.parse_group_overrides(text)
    assert fragment in str(err.value)


# ------------------------------------------------------------------------------------------------ correlate


MONOTONE_X = [0.10, 0.25, 0.30, 0.42, 0.55, 0.61, 0.80, 0.93]


def test_correlate_monotone_gives_rank_correlation_one():
    ys = [math.exp(4 * x) for x in MONOTONE_X]  # strictly increasing, not linear
    items = [f"l{i}" for i in range(len(ys))]
    res = L.correlate(MONOTONE_X, ys, items)
    assert res.n == len(ys) and res.languages == tuple(items)
    assert res.spearman_rho == pytest.approx(1.0)
    # every resample (with a non-constant side) of a strictly monotone relation is monotone too: rho = 1 in each
    assert res.spearman_ci[1] == pytest.approx(1.0) and res.spearman_ci[0] == pytest.approx(1.0)
    assert res.pearson_r == pytest.approx(float(np.corrcoef(MONOTONE_X, ys)[0, 1]))
    assert 0 < res.pearson_r < 1
    assert res.pearson_ci[0] <= res.pearson_r <= res.pearson_ci[1] <= 1.0
    assert "indicative" in res.note  # 8 < FEW_LANGUAGES items
    assert "95% CIs" in res.note and "seed 0" in res.note
    down = L.correlate(MONOTONE_X, [-y for y in ys], items)
    assert down.spearman_rho == pytest.approx(-1.0) and down.spearman_ci[0] == pytest.approx(-1.0)
    assert down.pearson_r == pytest.approx(-res.pearson_r)


def test_correlate_needs_three_items_and_a_varying_side():
    few = L.correlate([0.1, 0.9], [1.0, 5.0], ["a", "b"], unit="pair", value="score")
    assert few.n == 2 and math.isnan(few.pearson_r) and math.isnan(few.spearman_rho)
    assert all(math.isnan(v) for v in few.pearson_ci + few.spearman_ci)
    assert "only 2 pair(s)" in few.note and "at least 3" in few.note
    none = L.correlate([], [], [])
    assert none.n == 0 and math.isnan(none.spearman_p)
    flat_x = L.correlate([0.5, 0.5, 0.5, 0.5], [1.0, 2.0, 3.0, 4.0], list("abcd"))
    assert math.isnan(flat_x.pearson_r) and math.isnan(flat_x.spearman_rho)
    assert flat_x.note.startswith("all distances are equal")
    flat_y = L.correlate([0.1, 0.2, 0.3, 0.4], [7.0] * 4, list("abcd"), value="score")
    assert math.isnan(flat_y.spearman_rho) and flat_y.note.startswith("all scores are equal")
    kept = L.correlate([0.1, 0.2], [1.0, 2.0], ["a", "b"], notes=["mine"])
    assert kept.note.endswith("mine")  # the caller's notes follow the reason


def test_correlate_is_deterministic_for_a_seed():
    rng = np.random.default_rng(7)
    xs = rng.uniform(0, 1, 15)
    ys = 10 * xs + rng.normal(0, 3, 15)
    items = [f"i{n}" for n in range(15)]
    one = L.correlate(xs, ys, items, seed=5, n_resamples=500)
    two = L.correlate(xs, ys, items, seed=5, n_resamples=500)
    assert one == two
    other = L.correlate(xs, ys, items, seed=6, n_resamples=500)
    assert (other.pearson_r, other.spearman_rho) == (one.pearson_r, one.spearman_rho)  # the point estimates
    assert (other.pearson_ci, other.spearman_ci) != (one.pearson_ci, one.spearman_ci)  # the resamples differ
    for res in (one, other):
        assert res.pearson_ci[0] <= res.pearson_r <= res.pearson_ci[1]
        assert res.spearman_ci[0] <= res.spearman_rho <= res.spearman_ci[1]
    assert "indicative" not in one.note  # 15 items


def test_correlate_rejects_inconsistent_input():
    with pytest.raises(DataError, match="one of each"):
        L.correlate([0.1, 0.2, 0.3], [1.0, 2.0], ["a", "b", "c"])
    with pytest.raises(DataError, match="finite"):
        L.correlate([0.1, math.nan, 0.3], [1.0, 2.0, 3.0], ["a", "b", "c"])
    with pytest.raises(DataError, match="level"):
        L.correlate([0.1, 0.2, 0.3], [1.0, 2.0, 3.0], ["a", "b", "c"], level=1.0)


def test_gap_correlation_leaves_out_the_pivots_other_caption_sets():
    gaps = {"de": 2.0, "nl": 3.0, "fr": 4.0, "ja": 15.0, "ko": 14.0}
    base = L.gap_correlation(gaps, kind="genetic")
    with_f8k = L.gap_correlation({**gaps, "en": 0.0, "en-x-f8k": 1.5}, kind="genetic")
    assert with_f8k.n == base.n == 5
    assert "en-x-f8k" not in with_f8k.languages
    assert "en-x-f8k (the pivot's language)" in with_f8k.note
    assert "en-x-f8k" not in base.note
    assert with_f8k.pearson_r == pytest.approx(base.pearson_r)
    assert with_f8k.spearman_ci == base.spearman_ci  # same items, same seed: the same bootstrap
    # a caption set of another language counts, with its language's distance
    as_set = L.gap_correlation({**gaps, "ZH_x_F8K": 12.0}, kind="genetic")
    as_lang = L.gap_correlation({**gaps, "zh": 12.0}, kind="genetic")
    assert as_set.n == 6 and "zh-x-f8k" in as_set.languages
    assert as_set.pearson_r == pytest.approx(as_lang.pearson_r)
    # the pivot may be a caption set itself: then plain English is its language
    pivot_f8k = L.gap_correlation({**gaps, "en": 0.5}, kind="genetic", pivot="en-x-f8k")
    assert pivot_f8k.n == 5 and "en (the pivot's language)" in pivot_f8k.note
    with pytest.raises(DataError, match="two entries"):
        L.gap_correlation({"zh-x-f8k": 1.0, "ZH_x_F8K": 2.0, "de": 0.5})


def test_a_language_given_twice_in_the_overrides_is_an_error():
    with pytest.raises(DataError, match="given twice"):
        L.parse_group_overrides("cs=close, CS=distant")
    with pytest.raises(DataError, match="given twice"):
        L.group_languages(["cs"], overrides={"cs": "close", "CS": "distant"})


def test_correlation_p_values_are_exact_for_a_handful_of_languages():
    from csr_core.languages import correlate

    three = correlate([0.1, 0.2, 0.3], [1.0, 2.0, 5.0], ["a", "b", "c"])
    assert three.spearman_rho == pytest.approx(1.0)
    assert three.spearman_p == pytest.approx(1 / 3) and three.pearson_p == pytest.approx(1 / 3)  # 2 of 6 orderings
    assert "exact over all 6 orderings" in three.note
    many = correlate(list(range(12)), [x + (x % 3) for x in range(12)], [str(x) for x in range(12)])
    assert "exact" not in many.note and 0 < many.spearman_p < 0.01
