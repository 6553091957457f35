"""Code-switching: golden outputs, determinism, whole-word replacements, switch ratio = p x coverage, clear errors."""

from __future__ import annotations

import argparse
import gzip
import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import regex

from csr_core.codeswitch import (CodeSwitcher, LanguageStats, Span, SwitchedText, corpus_switch_ratio,
                                 joins_without_space, switched_html, text_direction)
from csr_core.errors import CSRError, LexiconError
from csr_core.lexicon import Lexicon, load_muse

CAPTIONS = [
    "A man in a blue shirt is standing on a ladder cleaning a window.",
    "Two young, White males are outside near many bushes.",
    "A little girl's dog runs through the T-shirt shop!",
]

TINY = {
    "de": Lexicon({"man": ["Mann"], "dog": ["Hund", "Köter"], "blue": ["blau"], "shirt": ["Hemd"],
                   "window": ["Fenster"], "girl": ["Mädchen"], "ladder": ["Leiter"]}, "en", "de"),
    "fr": Lexicon({"man": ["homme"], "dog": ["chien"], "blue": ["bleu"], "shirt": ["chemise"], "window": ["fenêtre"],
                   "girl": ["fille"], "cleaning": ["nettoyant"]}, "en", "fr"),
}


@pytest.fixture(scope="module")
def muse(shared_data) -> dict[str, Lexicon]:
    return {lang: load_muse(lang, shared_data) for lang in ("de", "fr", "cs", "zh")}


@pytest.fixture(scope="module")
def train_captions(shared_data) -> list[str]:
    """Up to 3000 Multi30K English training captions (the first 3000 of the real file)."""
    with gzip.open(shared_data / "multi30k" / "task1" / "raw" / "train.en.gz", "rt", encoding="utf-8") as handle:
        return [line.rstrip("\n") for _, line in zip(range(3000), handle)]


# ---- golden outputs (checked by eye once, then pinned) -------------------------------------------------------------


def test_golden_tiny_lexicons():
    bl = CodeSwitcher(TINY, "bl", p=0.5, seed=0, langs=["de"])
    assert [bl.switch(c).text for c in CAPTIONS] == [
        "A Mann in a blue shirt is standing on a Leiter cleaning a Fenster.",
        "Two young, White males are outside near many bushes.",
        "A little girl's dog runs through the T-shirt shop!",
    ]
    ml = CodeSwitcher(TINY, "ml", p=0.5, seed=7, langs=["de", "fr"])
    assert [ml.switch(c).text for c in CAPTIONS] == [
        "A homme in a bleu Hemd is standing on a ladder nettoyant a window.",
        "Two young, White males are outside near many bushes.",
        "A little Mädchen's Hund runs through the T-shirt shop!",
    ]
    result = ml.switch(CAPTIONS[0])
    assert result.spans == [
        Span("man", "homme", "fr", 2, 5, 2, 7),
        Span("blue", "bleu", "fr", 11, 15, 13, 17),
        Span("shirt", "Hemd", "de", 16, 21, 18, 22),
        Span("cleaning", "nettoyant", "fr", 46, 54, 47, 56),
    ]
    assert result.langs_used == ("fr", "de")


def test_golden_real_muse(muse, real_data):
    bl = CodeSwitcher(muse, "bl", p=0.5, seed=0, langs="de")
    assert [bl.switch(c).text for c in CAPTIONS] == [
        "A mann in a blue shirt is standing on a leitern cleaning a fenster.",
        "Two junge, White males are außen nähe zahlreiche bushes.",
        "A little girl's dog runs through das T-shirt shop!",
    ]
    bl1 = CodeSwitcher(muse, "bl", p=0.5, seed=1, langs="de")
    assert bl1.switch(CAPTIONS[1]).text == "Zweit junge, White males sind outside nahe viele gebüsch."
    ml = CodeSwitcher(muse, "ml", p=0.5, seed=0, langs="de,fr,cs")
    assert [ml.switch(c).text for c in CAPTIONS] == [
        "A man in a blue shirt is stehend on a ladder cleaning a schaufenster.",
        "Two jeunes, White samci sind outside near mnoha bushes.",
        "A little girl's chiens rennt via the T-shirt shop!",
    ]
    zh = CodeSwitcher(muse, "bl", p=0.75, seed=0, langs="zh")
    assert [zh.switch(c).text for c in CAPTIONS] == [
        "A 男人 in a blue shirt is 站立 on a 梯 cleaning a 視窗.",
        "Two young, White males are 外面近許多灌木叢.",
        "A 小女孩's 狗 runs 透過 the T-shirt 店!",
    ]
    dictionary = CodeSwitcher(muse, "dictionary", langs="de")
    assert dictionary.switch(CAPTIONS[1]).text == "Zweit jung, Weiß männer sind außerhalb nah viele gebüsch."


# ---- determinism -------------------------------------------------------------------------------------------------


def _snapshot(results: list[SwitchedText]) -> list[tuple]:
    return [(r.text, tuple(r.spans), r.n_switched_content, r.n_content) for r in results]


@pytest.mark.parametrize("mode, langs", [("bl", "de"), ("ml", "de,fr,cs"), ("multiword", "de,zh")])
def test_same_output_whatever_the_batching_or_threads(muse, train_captions, mode, langs):
    captions = train_captions[:600]
    reference = _snapshot(CodeSwitcher(muse, mode, p=0.5, seed=3, langs=langs).switch_batch(captions))
    for size in (1, 7, 64):
        switcher = CodeSwitcher(muse, mode, p=0.5, seed=3, langs=langs)  # fresh word cache each time
        out = []
        for start in range(0, len(captions), size):
            out += switcher.switch_batch(captions[start:start + size])
        assert _snapshot(out) == reference, size
    shared = CodeSwitcher(muse, mode, p=0.5, seed=3, langs=langs)
    chunks = [captions[i:i + 50] for i in range(0, len(captions), 50)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = [item for chunk in pool.map(shared.switch_batch, chunks) for item in chunk]
    assert _snapshot(threaded) == reference
    in_reverse = shared.switch_batch(captions[::-1])[::-1]
    assert _snapshot(in_reverse) == reference


def test_seed_and_key_change_the_draws(muse, train_captions):
    captions = train_captions[:200]
    a = [r.text for r in CodeSwitcher(muse, "bl", p=0.5, seed=0, langs="de").switch_batch(captions)]
    b = [r.text for r in CodeSwitcher(muse, "bl", p=0.5, seed=1, langs="de").switch_batch(captions)]
    assert sum(x != y for x, y in zip(a, b)) > 100
    switcher = CodeSwitcher(muse, "bl", p=0.5, seed=0, langs="de")
    by_index = switcher.switch_batch(captions, keys=range(200))
    assert by_index[5] == switcher.switch(captions[5], key=5)
    assert sum(x.text != y for x, y in zip(by_index, a)) > 100
    with pytest.raises(CSRError, match="keys"):
        switcher.switch_batch(captions, keys=range(3))


def test_switched_set_grows_with_p(muse, train_captions):
    """The same uniforms serve every p, so a word switched at p=0.25 is switched at p=0.5 (a clean robustness curve)."""
    low = CodeSwitcher(muse, "bl", p=0.25, seed=0, langs="de", translation_choice="first")
    high = CodeSwitcher(muse, "bl", p=0.5, seed=0, langs="de", translation_choice="first")
    grew = 0
    for caption in train_captions[:300]:
        small = {(s.src_start, s.replacement) for s in low.switch(caption).spans}
        large = {(s.src_start, s.replacement) for s in high.switch(caption).spans}
        assert small <= large, caption
        grew += len(large) > len(small)
    assert grew > 100


# ---- never inside a word -----------------------------------------------------------------------------------------

_ALNUM = regex.compile(r"[\p{L}\p{M}\p{N}]")


def _inside_word(text: str, pos: int) -> bool:
    """True when `pos` cuts a word: letters on both sides, or a hyphen/apostrophe joining letters."""
    if pos <= 0 or pos >= len(text):
        return False
    before, after = text[pos - 1], text[pos]
    if _ALNUM.match(before) and _ALNUM.match(after):
        return True
    if before in "-'’" and pos >= 2 and _ALNUM.match(text[pos - 2]) and _ALNUM.match(after):
        return True
    return after in "-'’" and pos + 1 < len(text) and _ALNUM.match(before) and _ALNUM.match(text[pos + 1]) and \
        not regex.match(r"['’](?i:s|re|ve|ll|d|m)(?![\p{L}\p{M}\p{N}])", text[pos:])


@pytest.mark.parametrize("mode, langs", [("bl", "de"), ("ml", "de,fr,cs"), ("multiword", "zh"), ("dictionary", "de")])
def test_no_replacement_inside_a_word(muse, train_captions, mode, langs):
    switcher = CodeSwitcher(muse, mode, p=None if mode == "dictionary" else 0.8, seed=11, langs=langs)
    n_spans = 0
    for result in switcher.switch_batch(train_captions):
        rebuilt, last = [], 0
        for span in result.spans:
            n_spans += 1
            assert result.original[span.src_start:span.src_end] == span.source
            assert result.text[span.out_start:span.out_end] == span.replacement
            assert not _inside_word(result.original, span.src_start), (result.original, span)
            assert not _inside_word(result.original, span.src_end), (result.original, span)
            gap = result.original[last:span.src_start]
            rebuilt += ["" if rebuilt and gap.isspace() and _joined(result, span) else gap, span.replacement]
            last = span.src_end
        rebuilt.append(result.original[last:])
        assert "".join(rebuilt) == result.text
    assert n_spans > len(train_captions)


def _joined(result: SwitchedText, span: Span) -> bool:
    """Whether the space before `span` was dropped (two adjacent zh/ja replacements)."""
    previous = [s for s in result.spans if s.src_end <= span.src_start][-1]
    return span.out_start == previous.out_end


def test_substrings_and_compounds_are_left_alone():
    lexicon = {"de": Lexicon({"cat": ["Katze"], "shirt": ["Hemd"], "man": ["Mann"], "new york": ["New York"],
                              "york": ["York"], "s": ["X"]}, "en", "de")}
    switcher = CodeSwitcher(lexicon, "multiword", p=1.0, seed=0)
    result = switcher.switch("Concatenate the cat's T-shirt; a man's New York-based catalog. CAT!")
    assert result.text == "Concatenate the Katze's T-shirt; a Mann's New York-based catalog. KATZE!"
    assert [s.source for s in result.spans] == ["cat", "man", "CAT"]


# ---- switch ratio = p x coverage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_switch_ratio_bl_matches_p_times_coverage(muse, train_captions, p):
    coverage = muse["de"].coverage(train_captions, exclude_stopwords=True).token_share
    results = CodeSwitcher(muse, "bl", p=p, seed=0, langs="de").switch_batch(train_captions)
    ratio = corpus_switch_ratio(results)
    assert abs(ratio - p * coverage) <= 0.02, (p, ratio, coverage)
    if p in (0.0, 1.0):
        assert ratio == pytest.approx(p * coverage, abs=1e-12)  # exact at the ends


@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 0.75, 1.0])
def test_switch_ratio_ml_matches_p_times_mean_coverage(muse, train_captions, p):
    langs = ("de", "fr", "cs")
    coverage = sum(muse[lang].coverage(train_captions, exclude_stopwords=True).token_share for lang in langs) / 3
    results = CodeSwitcher(muse, "ml", p=p, seed=0, langs=langs).switch_batch(train_captions)
    ratio = corpus_switch_ratio(results)
    assert abs(ratio - p * coverage) <= 0.02, (p, ratio, coverage)
    used = {span.lang for result in results[:200] for span in result.spans}
    assert used == (set(langs) if p > 0 else set())


def test_ratio_leaves_stopwords_out():
    lexicon = {"de": Lexicon({"the": ["der"], "dog": ["Hund"], "barks": ["bellt"]}, "en", "de")}
    result = CodeSwitcher(lexicon, "bl", p=1.0, seed=0).switch("The dog barks")
    assert result.text == "Der Hund bellt"
    assert (result.n_tokens, result.n_content, result.n_switched, result.n_switched_content) == (3, 2, 3, 2)
    assert result.switch_ratio == 1.0


# ---- casing, scripts without spaces, phrases, dictionary mode -----------------------------------------------------


def test_capitalisation_is_restored():
    lexicon = {"de": Lexicon({"dog": ["hund"], "usa": ["usa"], "i": ["ich"], "iphone": ["handy"]}, "en", "de")}
    switcher = CodeSwitcher(lexicon, "bl", p=1.0, seed=0)
    assert switcher.switch("Dog and dog and DOG in USA, I said iPhone").text == \
        "Hund and hund and HUND in USA, Ich said handy"


def test_no_space_languages_join_only_between_their_replacements():
    lexicons = {"zh": Lexicon({"red": ["红"], "dog": ["狗"], "runs": ["跑"]}, "en", "zh"),
                "de": Lexicon({"red": ["rot"], "dog": ["Hund"], "runs": ["läuft"]}, "en", "de")}
    zh = CodeSwitcher(lexicons, "bl", p=1.0, seed=0, langs="zh")
    result = zh.switch("A red dog, runs home")
    assert result.text == "A 红狗, 跑 home"
    assert result.spans[1] == Span("dog", "狗", "zh", 6, 9, 3, 4)
    mixed = CodeSwitcher(lexicons, "ml", p=1.0, seed=0, langs="zh,de")
    outcomes = set()
    for key, caption in enumerate(["A red dog runs", "red dog runs fast", "the red dog runs away", "dog runs red"] * 5):
        out = mixed.switch(caption, key=key)
        for a, b in zip(out.spans, out.spans[1:]):  # every word is switched: neighbours are adjacent words
            joined = out.text[a.out_end:b.out_start] == ""
            assert joined == (a.lang == b.lang == "zh"), out
            outcomes.add((a.lang, b.lang))
    assert len(outcomes) == 4  # zh-zh (joined), zh-de, de-zh, de-de (spaced) all seen


# ---- distant scripts: Chinese joins, Arabic text, per-language statistics, display HTML --------------------------

ZH_BYTES = "little 小\ndog 狗\ndna DNA\ncoffee 咖啡\n".encode()
ARABIC_RED, ARABIC_DOG = "أحمر", "كلب"  # the hamza is precomposed (NFC), as the lexicon stores it
_CONTROL = regex.compile(r"[\p{Cc}\p{Cf}]")  # format characters include every bidi mark, embedding and isolate


def _tiny(lang: str, data: bytes) -> Lexicon:
    return Lexicon.from_bytes(data, f"en-{lang}.txt")


def test_chinese_replacements_join_and_latin_neighbours_keep_their_space():
    switcher = CodeSwitcher({"zh": _tiny("zh", ZH_BYTES)}, "bl", p=1.0, seed=0)
    result = switcher.switch("A little dog runs.")
    assert result.text == "A 小狗 runs."
    assert result.spans == [Span("little", "小", "zh", 2, 8, 2, 3), Span("dog", "狗", "zh", 9, 12, 3, 4)]
    # A Latin entry of the zh lexicon is not Chinese script: the spaces around it stay, though its language joins.
    assert switcher.switch("little dna dog").text == "小 DNA 狗"
    assert switcher.switch("little, dog").text == "小, 狗"  # punctuation between them is kept as it is
    assert switcher.switch("little  dog").text == "小狗"  # any whitespace run between two Han words goes
    assert switcher.switch("Coffee dog").text == "咖啡狗"  # case classes of the source do not matter to Han


def test_join_rule_follows_the_script_of_the_letters_that_meet():
    assert joins_without_space("小", "狗") and joins_without_space("コーヒー", "ネコ")  # "ー" is shared by Kana
    assert joins_without_space("猫", "ねこ") and joins_without_space("แมว", "ดำ")
    assert not joins_without_space("DNA", "狗") and not joins_without_space("狗", "3")
    assert not joins_without_space("강아지", "고양이")  # Hangul is written with spaces
    assert not joins_without_space("", "狗")
    ko = _tiny("ko", "dog 강아지\ncat 고양이\n".encode())
    assert CodeSwitcher({"ko": ko}, "bl", p=1.0).switch("dog cat").text == "강아지 고양이"
    ja = _tiny("ja", "coffee コーヒー\ncat ネコ\n".encode())
    assert CodeSwitcher({"ja": ja}, "bl", p=1.0).switch("A coffee cat").text == "A コーヒーネコ"


def test_chinese_and_arabic_ml_cs_joins_only_chinese_pairs_and_is_deterministic():
    lexicons = {"zh": _tiny("zh", ZH_BYTES), "ar": _tiny("ar", f"little {ARABIC_RED}\ndog {ARABIC_DOG}\n".encode())}
    captions = [f"a little dog and little dog number {i}" for i in range(40)]
    results = CodeSwitcher(lexicons, "ml", p=1.0, seed=5, langs="zh,ar").switch_batch(captions)
    again = CodeSwitcher(lexicons, "ml", p=1.0, seed=5, langs="zh,ar").switch_batch(captions[::-1])[::-1]
    assert results == again
    pairs = set()
    for result in results:
        for a, b in zip(result.spans, result.spans[1:]):
            if b.src_start == a.src_end + 1:  # "little dog": adjacent words
                pairs.add((a.lang, b.lang))
                assert (result.text[a.out_end:b.out_start] == "") == (a.lang == b.lang == "zh"), result.text
    assert pairs == {("zh", "zh"), ("zh", "ar"), ("ar", "zh"), ("ar", "ar")}


def test_arabic_replacements_are_the_lexicon_strings_without_control_characters():
    lexicon = _tiny("ar", f"red {ARABIC_RED}\ndog {ARABIC_DOG}\n".encode())
    result = CodeSwitcher({"ar": lexicon}, "bl", p=1.0, seed=0).switch("A red dog's bowl, Dog!")
    assert result.text == f"A {ARABIC_RED} {ARABIC_DOG}'s bowl, {ARABIC_DOG}!"
    assert [s.replacement for s in result.spans] == [ARABIC_RED, ARABIC_DOG, ARABIC_DOG]  # no case applied either
    assert not _CONTROL.search(result.text)
    assert all(result.text[s.out_start:s.out_end] == s.replacement for s in result.spans)


def _elements(markup: str) -> list[tuple[str, dict[str, str | None], str]]:
    """(tag, attributes, text directly inside) of every element, parsed by the standard library's HTML parser."""
    from html.parser import HTMLParser

    found: list[tuple[str, dict[str, str | None], str]] = []
    stack: list[int] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs), ""))
            stack.append(len(found) - 1)

        def handle_endtag(self, tag):
            stack.pop()

        def handle_data(self, data):
            if stack:
                tag, attrs, text = found[stack[-1]]
                found[stack[-1]] = (tag, attrs, text + data)

    Collect().feed(markup)
    return found


def test_switched_html_escapes_captions_and_isolates_rtl_words():
    lexicons = {"ar": Lexicon({"dog": [ARABIC_DOG], "red": [ARABIC_RED], "cat": ["<img src=x onerror=alert(1)>"]},
                              "en", "ar")}
    switcher = CodeSwitcher(lexicons, "bl", p=1.0, seed=0)
    result = switcher.switch("<script>alert('x')</script> a red dog & a cat")
    original, switched = switched_html(result, {"ar": "#fde68a"})
    for markup in (original, switched):
        assert "<script>" not in markup and "<img" not in markup
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in markup and " &amp; " in markup
    elements = _elements(switched)
    assert elements[0][0] == "div" and elements[0][1] == {"class": "cs-switched", "dir": "ltr"}
    isolated = [(attrs["dir"], text) for tag, attrs, text in elements if tag == "bdi"]
    assert isolated == [("rtl", ARABIC_RED), ("rtl", ARABIC_DOG), ("ltr", "<img src=x onerror=alert(1)>")]
    marks = [attrs for tag, attrs, _ in elements if tag == "mark"]
    assert [m["data-lang"] for m in marks] == ["ar"] * 3
    assert switched.count('<sub style="font-size:0.65em;opacity:0.7">ar</sub></bdi>') == 3  # labels isolated too
    assert [attrs["dir"] for tag, attrs, text in _elements(original) if tag == "bdi"] == ["ltr"] * 3
    # All Arabic: the block itself reads right to left (a browser's dir="auto" would skip the isolated words).
    arabic_only = switched_html(switcher.switch("red dog."), {})[1]
    assert _elements(arabic_only)[0][1]["dir"] == "rtl" and 'style="background:#e5e7eb' in arabic_only
    assert text_direction("123 كلب") == "rtl" and text_direction("A كلب") == "ltr" and text_direction("42!") == "auto"


def test_language_stats_count_switches_and_coverage_per_language():
    lexicons = {"zh": _tiny("zh", ZH_BYTES), "ar": _tiny("ar", f"dog {ARABIC_DOG}\n".encode())}
    bl = CodeSwitcher(lexicons, "bl", p=1.0, seed=0, langs="zh")
    [zh] = bl.language_stats([bl.switch("The coffee dog runs")])  # "the" is a stopword: 3 content words
    assert zh == LanguageStats("zh", 2 / 3, 2 / 3, 2, 2, 3)
    ml = CodeSwitcher(lexicons, "ml", p=0.5, seed=1, langs="zh,ar")
    captions = [f"the coffee dog runs after dog {i}" for i in range(300)]  # 5 content words ("after" is a stopword)
    results = ml.switch_batch(captions)
    stats = {s.lang: s for s in ml.language_stats(results)}
    n_content = sum(r.n_content for r in results)
    assert {s.n_content for s in stats.values()} == {n_content}
    assert stats["zh"].n_covered == 3 * 300 and stats["ar"].n_covered == 2 * 300
    assert stats["zh"].n_switched_content + stats["ar"].n_switched_content == sum(r.n_switched_content for r in results)
    assert sum(s.switch_ratio for s in stats.values()) == pytest.approx(corpus_switch_ratio(results))
    for s in stats.values():  # each word draws its language first: p x coverage / 2
        assert abs(s.switch_ratio - 0.5 * s.coverage / 2) < 0.03, s
    assert ml.language_stats([]) == [LanguageStats("zh", 0.0, 0.0, 0, 0, 0), LanguageStats("ar", 0.0, 0.0, 0, 0, 0)]


def test_real_muse_chinese_and_arabic(real_data, train_captions):
    zh_lex, ar_lex = load_muse("zh", real_data), load_muse("ar", real_data)
    zh = CodeSwitcher({"zh": zh_lex}, "bl", p=1.0, seed=0)
    assert zh.switch("A little dog runs on the beach.").text == "A 小狗 runs on the 海灘."
    joined = spaced = 0
    for result in zh.switch_batch(train_captions[:1000]):
        for a, b in zip(result.spans, result.spans[1:]):
            gap = result.original[a.src_end:b.src_start]
            if gap.isspace():
                glued = result.text[a.out_end:b.out_start] == ""
                assert glued == joins_without_space(a.replacement, b.replacement), (result.text, a, b)
                joined += glued
                spaced += not glued
    assert joined > 100 and spaced > 0  # the MUSE en-zh identity pairs ("man", "red") keep their spaces
    raw = {line.split(" @ ")[0] for line in (real_data / "muse" / "en-ar.dict").read_text("utf-8").splitlines()}
    ar = CodeSwitcher({"ar": ar_lex}, "bl", p=1.0, seed=0)
    n_arabic = 0
    for result in ar.switch_batch(train_captions[:500]):
        assert not _CONTROL.search(result.text)
        for span in result.spans:
            if text_direction(span.replacement) == "rtl":  # Latin identity pairs ("the") take the source's case
                assert span.replacement in ar_lex.translations(span.source) and span.replacement in raw, span
                n_arabic += 1
    assert n_arabic > 1000


def test_real_ml_cs_over_five_languages_reports_each_ratio_and_coverage(real_data, train_captions):
    langs = ("de", "fr", "pt", "zh", "ar")
    lexicons = {lang: load_muse(lang, real_data) for lang in langs}
    switcher = CodeSwitcher(lexicons, "ml", p=0.5, seed=0, langs=langs)
    results = switcher.switch_batch(train_captions)
    stats = switcher.language_stats(results)
    assert [s.lang for s in stats] == list(langs)
    for s in stats:
        expected = lexicons[s.lang].coverage(train_captions, exclude_stopwords=True)
        assert s.coverage == expected.token_share and s.n_content == expected.n_tokens
        assert 0.7 < s.coverage < 1.0 and abs(s.switch_ratio - 0.5 * s.coverage / 5) < 0.01, s
    assert sum(s.switch_ratio for s in stats) == pytest.approx(corpus_switch_ratio(results))
    for lang in ("zh", "ar"):
        bl = CodeSwitcher(lexicons, "bl", p=0.5, seed=0, langs=lang)
        [one] = bl.language_stats(bl.switch_batch(train_captions))
        assert abs(one.switch_ratio - 0.5 * one.coverage) < 0.02, one


def test_multiword_longest_match():
    lexicon = {"es": Lexicon({"new york": ["nueva york"], "new": ["nuevo"], "york": ["york"],
                              "new york city": ["ciudad de nueva york"]}, "en", "es")}
    switcher = CodeSwitcher(lexicon, "multiword", p=1.0, seed=0)
    result = switcher.switch("I love New York City and new shoes in New  York.")
    assert result.text == "I love Ciudad de nueva york and nuevo shoes in Nueva york."
    assert [s.source for s in result.spans] == ["New York City", "new", "New  York"]
    assert result.n_switched == 6


def test_phrase_matcher_reduces_to_the_ml_rule_on_single_words(muse, train_captions):
    """Multiword mode on a lexicon of single words is ML-CS exactly (same draws, same decisions)."""
    switcher = CodeSwitcher(muse, "ml", p=0.5, seed=0, langs="de,fr,cs")
    for caption in train_captions[:500]:
        key = b"t\x1f" + caption.encode()
        assert switcher._switch_phrases(caption, key) == switcher._switch_ml(caption, key)


def test_ml_and_multiword_with_one_language():
    for mode in ("ml", "multiword"):
        switcher = CodeSwitcher(TINY, mode, p=1.0, seed=0, langs=["fr"])
        result = switcher.switch("A man and his dog")
        assert result.text == "A homme and his chien" and result.langs_used == ("fr",)


def test_dictionary_mode_is_translate_test():
    switcher = CodeSwitcher(TINY, "dictionary", langs=["de"])
    assert switcher.p == 1.0 and switcher.translation_choice == "first"
    assert switcher.switch("My dog.").text == "My Hund."
    assert switcher.params["cs_mode"] == "dictionary" and switcher.params["lexicons"]["de"] == TINY["de"].fingerprint


def test_translation_choice_random_uses_all_translations():
    switcher = CodeSwitcher(TINY, "bl", p=1.0, seed=0, langs="de")
    seen = {switcher.switch(f"dog {i}").text.split()[0] for i in range(50)}
    assert seen == {"Hund", "Köter"}
    first = CodeSwitcher(TINY, "bl", p=1.0, seed=0, langs="de", translation_choice="first")
    assert {first.switch(f"dog {i}").text.split()[0] for i in range(50)} == {"Hund"}


def test_edge_texts():
    switcher = CodeSwitcher(TINY, "ml", p=1.0, seed=0)
    for text in ["", "   ", "!!!", "\u00e9t\u00e9"]:
        result = switcher.switch(text)
        assert result.text == result.original and result.spans == [] and result.switch_ratio == 0.0
    decomposed = switcher.switch("Man\u0301 dog")  # NFC applied: offsets refer to `original`
    assert decomposed.original == "Mań dog"


# ---- bad input -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [-0.1, 1.5, math.nan, math.inf, "0.5", True])
def test_bad_p(p):
    with pytest.raises(CSRError, match="p must"):
        CodeSwitcher(TINY, "bl", p=p, langs="de")


def test_bad_languages_and_modes():
    with pytest.raises(CSRError, match="language set is empty"):
        CodeSwitcher(TINY, "ml", langs=[])
    with pytest.raises(LexiconError, match="no lexicon loaded for cs"):
        CodeSwitcher(TINY, "ml", langs=["de", "cs"])
    with pytest.raises(LexiconError, match="unknown language code"):
        CodeSwitcher(TINY, "ml", langs=["de", "xx"])
    with pytest.raises(CSRError, match="exactly one language"):
        CodeSwitcher(TINY, "bl")
    with pytest.raises(CSRError, match="more than once"):
        CodeSwitcher(TINY, "ml", langs="de,de")
    with pytest.raises(CSRError, match="unknown code-switching mode"):
        CodeSwitcher(TINY, "wordsalad", langs="de")
    with pytest.raises(CSRError, match="p must be 1"):
        CodeSwitcher(TINY, "dictionary", p=0.5, langs="de")
    with pytest.raises(LexiconError, match="translates into 'de'"):
        CodeSwitcher({"fr": TINY["de"]}, "bl")
    with pytest.raises(CSRError, match="seed"):
        CodeSwitcher(TINY, "bl", langs="de", seed=0.5)
    with pytest.raises(CSRError, match="translation_choice"):
        CodeSwitcher(TINY, "bl", langs="de", translation_choice="best")
    with pytest.raises(CSRError, match="string"):
        CodeSwitcher(TINY, "bl", langs="de").switch(None)
    assert CodeSwitcher(list(TINY.values()), "ML-CS").langs == ("de", "fr")


# ---- CLI -------------------------------------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    from csr_core.commands import codeswitch as command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.run(parser.parse_args(argv))


def test_cli_switches_a_file(tmp_path, capsys):
    lexicon = tmp_path / "en-de.txt"
    lexicon.write_text("man Mann\ndog Hund\nblue blau\n", encoding="utf-8")
    captions = tmp_path / "caps.txt"
    captions.write_text("A man with a blue dog.\nNothing here.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert _cli(["--lexicon", str(lexicon), "--langs", "de", "--p", "1", "--input", str(captions),
                 "--output", str(out), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in rows] == ["A Mann with a blau Hund.", "Nothing here."]
    assert rows[0]["spans"][0] == {"source": "man", "replacement": "Mann", "lang": "de", "src_start": 2,
                                   "src_end": 5, "out_start": 2, "out_end": 6}
    assert "switch ratio" in capsys.readouterr().err
    text_out = tmp_path / "out.txt"
    _cli(["--lexicon", f"de={lexicon}", "--p", "0.5", "--seed", "4", "--input", str(captions), "--output",
          str(text_out), "--quiet"])
    again = CodeSwitcher({"de": Lexicon.from_file(lexicon)}, "bl", p=0.5, seed=4)
    assert text_out.read_text(encoding="utf-8").splitlines() == [again.switch(c).text for c in
                                                                 captions.read_text().splitlines()]


@pytest.mark.parametrize("mode, langs", [("ml", "de,fr,pt,zh,ar"), ("bl", "zh"), ("bl", "ar")])
def test_cli_switches_into_distant_languages(real_data, train_captions, tmp_path, capsys, mode, langs):
    captions = tmp_path / "caps.txt"
    captions.write_text("\n".join(train_captions[:300]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert _cli(["--langs", langs, "--mode", mode, "--p", "0.5", "--data-dir", str(real_data), "--input",
                 str(captions), "--output", str(out), "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    lexicons = {lang: load_muse(lang, real_data) for lang in langs.split(",")}
    expected = CodeSwitcher(lexicons, mode, p=0.5, seed=0, langs=langs).switch_batch(train_captions[:300])
    assert [row["text"] for row in rows] == [r.text for r in expected]
    assert {span["lang"] for row in rows for span in row["spans"]} == set(lexicons)
    err = capsys.readouterr().err
    for lang in lexicons:
        assert regex.search(rf"\n  {lang}: switch ratio 0\.\d{{3}}, lexicon coverage 0\.\d{{3}} \(\d+ of \d+ ", err), err


def test_cli_errors(tmp_path):
    captions = tmp_path / "caps.txt"
    captions.write_text("a dog\n", encoding="utf-8")
    with pytest.raises(LexiconError, match="no MUSE dictionary en-de"):
        _cli(["--langs", "de", "--data-dir", str(tmp_path), "--input", str(captions)])
    with pytest.raises(CSRError, match="no lexicon"):
        _cli(["--input", str(captions)])


def test_cli_entry_point_reads_stdin(tmp_path):
    import subprocess
    import sys

    from csr_core.cli import COMMAND_MODULES

    assert "codeswitch" in COMMAND_MODULES
    lexicon = tmp_path / "en-de.txt"
    lexicon.write_text("dog Hund\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "csr_core", "codeswitch", "--lexicon", str(lexicon), "--p", "1"],
                          input="A dog.\nThe DOG\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["A Hund.", "The HUND"]
    bad = subprocess.run([sys.executable, "-m", "csr_core", "codeswitch", "--lexicon", str(lexicon), "--p", "2"],
                         input="A dog.\n", capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "p must be in [0, 1]" in bad.stderr


def test_switch_facts_count_identity_replacements_and_phrases():
    from csr_core.codeswitch import switch_facts

    lexicon = Lexicon({"rainbow": ["rainbow"], "dog": ["Hund"], "red shirt": ["rotes Hemd"]}, src="en", tgt="de")
    bl = CodeSwitcher({"de": lexicon}, mode="bl", p=1.0, seed=0).switch("A dog under a rainbow")
    facts = switch_facts(bl)
    assert (facts.n_switched_content, facts.n_identity, facts.n_phrases) == (2, 1, 0)
    assert facts.n_switched_content / facts.n_content == pytest.approx(bl.switch_ratio)
    phrases = CodeSwitcher({"de": lexicon}, mode="multiword", p=1.0, seed=0).switch("A man in a red shirt")
    assert switch_facts(phrases).n_phrases == 1 and "rotes Hemd" in phrases.text


def test_bidi_isolated_wraps_each_rtl_run_and_nothing_else():
    from csr_core.codeswitch import bidi_isolated

    assert bidi_isolated("a dog runs") == "a dog runs"
    assert bidi_isolated("a كلب صغير runs by a بحر") == "a \u2068كلب صغير\u2069 runs by a \u2068بحر\u2069"
    assert bidi_isolated("שלום world") == "\u2068שלום\u2069 world"
