"""Bilingual lexicons: every layout and encoding gives the same content, bad files fail loudly, stats are right."""

from __future__ import annotations

import codecs
import gzip
import socket
from pathlib import Path

import pytest

from csr_core.errors import LexiconError
from csr_core.lexicon import (
    Lexicon,
    available_muse,
    clean_title,
    detect_layout,
    download_muse,
    infer_pair,
    load_muse,
    normalize_lang,
)
from csr_core.tokenize import phrase_key, split_words, tokenize


@pytest.fixture(scope="module")
def muse_lines(shared_data) -> list[str]:
    """Up to 3000 lines of the MUSE en-de dictionary (`target @ source`)."""
    with open(shared_data / "muse" / "en-de.dict", encoding="utf-8") as handle:
        return [line.rstrip("\n") for _, line in zip(range(3000), handle)]


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ---- tokeniser ---------------------------------------------------------------------------------------------------


def test_tokenizer_keeps_every_character_and_whole_words():
    text = "A man's T-shirt, don't they're  o'clock naïve café 北京!"
    pieces = split_words(text)
    assert "".join(pieces) == text
    assert pieces[1::2] == ["A", "man", "T-shirt", "don't", "they", "o'clock", "naïve", "café", "北京"]
    assert pieces[4:7:2] == ["'s ", ", "]  # clitic stays in the separator, like the Treebank tokenizer
    tokens = tokenize(text)
    assert all(text[t.start:t.end] == t.text for t in tokens)


def test_ascii_fast_path_matches_unicode_grammar():
    from csr_core.tokenize import WORD_SPLIT

    for text in ["Two young, White males are outside.", "we'll o'clock MAN'S 'n' rock'n'roll a--b 3.5"]:
        assert split_words(text) == WORD_SPLIT.split(text)


def test_phrase_keys_refuse_edges_that_never_match():
    assert phrase_key("New  York") == ("new york", 2)
    assert phrase_key("#the") == ("#the", 0)
    assert phrase_key("man's") == ("man's", 0)
    assert phrase_key("philosopher's stone") == ("philosopher's stone", 2)


# ---- layouts and encodings: same content, same fingerprint --------------------------------------------------------


def test_real_muse_en_de_loads_completely(real_data):
    lexicon = load_muse("de", real_data)
    report = lexicon.report
    assert report.layout == "reversed" and report.n_malformed == 0
    assert report.n_lines == 101931
    # "#der @ #the" and friends can never match caption words: counted, with line numbers, not silently dropped
    assert report.n_unmatchable > 0 and report.unmatchable[0][1].endswith("@ #the")
    assert report.n_entries + report.n_unmatchable + report.n_duplicates == report.n_lines
    stats = lexicon.stats()
    assert stats.entries == report.n_entries and stats.sources == len(lexicon) > 70000
    assert 1.2 < stats.mean_translations < 1.6
    assert 0.3 < stats.identity_share < 0.6  # MUSE's noisy identical pairs ("shirt @ shirt")
    assert lexicon.translations("Man") == lexicon.translations("MAN") and "mann" in lexicon.translations("man")
    assert lexicon.translations("the")[:2] == ("die", "der")  # file order kept
    assert "zzqx" not in lexicon and lexicon.translations("zzqx") == ()
    assert load_muse("de", real_data) is lexicon  # memoised per file


def test_all_layouts_and_encodings_give_the_same_lexicon(tmp_path, muse_lines):
    reference = Lexicon.from_bytes("\n".join(muse_lines).encode(), "en-de.dict")
    pairs = [line.split(" @ ") for line in muse_lines]
    native = "\n".join(f"{src} {tgt}" for tgt, src in pairs) + "\n"
    tsv = "target\tsource\n" + "\n".join(f"{tgt}\t{src}" for tgt, src in pairs)
    variants = {
        "native (MUSE source target)": Lexicon.from_file(_write(tmp_path / "en-de.txt", native)),
        "native, CRLF and blank lines": Lexicon.from_bytes(native.replace("\n", "\r\n\r\n").encode(),
                                                           "en-de.0-5000.txt"),
        "tsv with header": Lexicon.from_file(_write(tmp_path / "en-de.tsv", tsv)),
        "utf-8 with BOM": Lexicon.from_bytes(codecs.BOM_UTF8 + native.encode(), "en-de.txt"),
        "utf-16 with BOM": Lexicon.from_bytes(native.encode("utf-16"), "en-de.txt"),
        "gzip": Lexicon.from_bytes(gzip.compress(native.encode()), "en-de.txt.gz"),
        "reversed via path": Lexicon.from_file(_write(tmp_path / "en-de.dict", "\n".join(muse_lines))),
    }
    for label, lexicon in variants.items():
        assert lexicon.fingerprint == reference.fingerprint, label
        assert lexicon.tgt == "de" and lexicon.src == "en", label
    assert variants["tsv with header"].report.layout == "tsv"
    assert variants["tsv with header"].report.header == ("target", "source")
    assert variants["native (MUSE source target)"].report.layout == "muse"
    assert variants["utf-16 with BOM"].report.encoding == "utf-16"
    assert variants["native, CRLF and blank lines"].report.n_blank == len(pairs)


def test_swap_and_explicit_layout_override(tmp_path):
    path = _write(tmp_path / "words.txt", "hund dog\nkatze cat\n")
    swapped = Lexicon.from_file(path, tgt="de", layout="muse", swap=True)
    assert swapped.translations("dog") == ("hund",)
    plain = Lexicon.from_file(path, tgt="de", layout="muse")
    assert plain.translations("hund") == ("dog",)
    with pytest.raises(LexiconError, match="malformed"):
        Lexicon.from_file(path, tgt="de", layout="reversed")  # wrong layout: every line malformed, never half-loaded
    named = Lexicon.from_file(_write(tmp_path / "de-en.txt", "hund dog\nkatze cat\n"))  # name order = columns
    assert named.tgt == "de" and named.translations("dog") == ("hund",) and named.report.swapped
    assert Lexicon.from_file(tmp_path / "de-en.txt", swap=False).translations("hund") == ("dog",)
    header = Lexicon.from_file(_write(tmp_path / "de-en.tsv", "de\ten\nhund\tdog\n"))  # named columns win
    assert header.translations("dog") == ("hund",) and not header.report.swapped


def test_multiword_wikipedia_titles(tmp_path):
    text = ("New York City\tNew York City\n"
            "Category:Rock music\tKategorie:Rockmusik\n"
            "Mercury (planet)\tMerkur (Planet)\n"
            "Star Wars: Episode I\tStar Wars: Episode I – Die dunkle Bedrohung\n"
            "Ice_hockey\tEishockey\n"
            "(film)\t(Film)\n")
    lexicon = Lexicon.from_file(_write(tmp_path / "wikititles-en-de.txt", text))
    assert lexicon.report.layout == "multiword"
    assert lexicon.translations("New York City") == ("new york city",)
    assert lexicon.translations("rock music") == ("rockmusik",)
    assert lexicon.translations("mercury") == ("merkur",)
    assert lexicon.translations("ice hockey") == ("eishockey",)
    assert lexicon.translations("star wars: episode i") == ("star wars: episode i – die dunkle bedrohung",)
    assert lexicon.max_ngram == 4
    assert lexicon.report.n_malformed == 1 and lexicon.report.malformed[0][0] == 6  # "(film)" cleans to nothing
    bars = Lexicon.from_bytes(b"Red Sea ||| Rotes Meer\nBlack Forest ||| Schwarzwald\n", "titles.txt", tgt="de")
    assert bars.report.layout == "multiword" and bars.translations("black forest") == ("schwarzwald",)
    assert clean_title("Template:Infobox_person (old)") == "infobox person"
    assert clean_title("Alien: Resurrection") == "alien: resurrection"  # a colon with a space is part of the title


def test_detect_layout():
    assert detect_layout(["die @ the", "der @ the"]) == "reversed"
    assert detect_layout(["the die", "the der"]) == "muse"
    assert detect_layout(["src\ttgt", "the\tdie"]) == "tsv"
    assert detect_layout(["New York\tNew York", "Rome\tRom"]) == "multiword"
    with pytest.raises(LexiconError, match="layout"):
        detect_layout(["one two three four", "five six seven"])


def test_drop_identity_pairs(tmp_path):
    text = "the @ the\ndie @ the\nhund @ dog\nShirt @ shirt\nhemd @ shirt\n"
    kept = Lexicon.from_bytes(text.encode(), "en-de.dict")
    dropped = Lexicon.from_bytes(text.encode(), "en-de.dict", drop_identity=True)
    assert kept.translations("the") == ("the", "die") and kept.stats().identity_share == pytest.approx(2 / 5)
    assert dropped.translations("the") == ("die",) and dropped.translations("shirt") == ("hemd",)
    assert dropped.report.n_identity_dropped == 2 and dropped.stats().identity_share == 0.0


# ---- bad input ---------------------------------------------------------------------------------------------------


def test_malformed_lines_are_counted_with_line_numbers(tmp_path):
    lines = [f"w{i} @ word{i}" for i in range(10)]
    lines[3] = "no separator here"
    lines[7] = "a @ b @ c"
    lines.append(" @ orphan")
    path = _write(tmp_path / "en-de.dict", "\n".join(lines) + "\n")
    lexicon = Lexicon.from_file(path)
    report = lexicon.report
    assert report.n_malformed == 3 and not report.ok
    assert [number for number, _ in report.malformed] == [4, 8, 11]
    assert "line 4: 'no separator here'" in report.summary()
    assert len(lexicon) == 8
    with pytest.raises(LexiconError, match="strict"):
        Lexicon.from_file(path, strict=True)


def test_first_malformed_lines_shown_and_rest_counted(tmp_path):
    good = [f"w{i} @ word{i}" for i in range(30)]
    bad = [f"junk line {i}" for i in range(9)]
    report = Lexicon.from_bytes("\n".join(good + bad).encode(), "en-de.dict").report
    assert report.n_malformed == 9 and len(report.malformed) == 5 and "and 4 more" in report.summary()


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\n\n  \n", "empty"),
    (b"one two three\nfour five six\n", "layout"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "binary"),
    ("hund @ dog\nk\xe4tze @ cat\n".encode("latin-1"), "line 2"),
    (b"\x1f\x8bnot really gzip", "gzip"),
])
def test_bad_files_are_clear_errors_naming_the_file(data, message):
    with pytest.raises(LexiconError, match=message) as info:
        Lexicon.from_bytes(data, "upload-en-de.txt")
    assert "upload-en-de.txt" in str(info.value)


def test_all_malformed_with_explicit_layout_is_an_error():
    with pytest.raises(LexiconError, match="every line is malformed") as info:
        Lexicon.from_bytes(b"a b c\nd e f\n", "en-de.txt", layout="muse")
    assert "line 1" in str(info.value)


def test_missing_file_and_unknown_languages(tmp_path):
    with pytest.raises(LexiconError, match="nope.dict"):
        Lexicon.from_file(tmp_path / "nope.dict")
    with pytest.raises(LexiconError, match="target language"):
        Lexicon.from_bytes(b"hund @ dog\n", "mydict.txt")
    with pytest.raises(LexiconError, match="'xx'"):
        Lexicon.from_bytes(b"hund @ dog\n", "mydict.txt", tgt="xx")
    with pytest.raises(LexiconError, match="'cs'"):  # a country code: the message names the language meant
        normalize_lang("cz")
    assert normalize_lang("jp") == "ja"  # XTD10's alias, project-wide (csr_core.languages.DATASET_ALIASES)
    with pytest.raises(LexiconError, match="empty language code"):
        normalize_lang(" ")
    assert normalize_lang("deu") == "de" and normalize_lang("zh_Hans") == "zh"  # default script dropped
    assert infer_pair("en-de.0-5000.txt") == ("en", "de") and infer_pair("dict.txt") is None
    with pytest.raises(LexiconError, match="unknown lexicon layout"):
        Lexicon.from_bytes(b"hund @ dog\n", "en-de.txt", layout="csv")


def test_load_muse_missing_language_lists_what_exists(tmp_path, shared_data):
    assert {"de", "fr", "cs", "zh", "ja"} <= set(available_muse(shared_data))
    with pytest.raises(LexiconError, match="no MUSE dictionary en-de") as info:
        load_muse("de", tmp_path)
    assert "download_muse" in str(info.value)


# ---- download helper (never the network in tests) ----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_unreachable_says_offline(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/en-de.txt"
    with pytest.raises(LexiconError, match="offline or unreachable") as error:
        download_muse("de", tmp_path, url=url, timeout=2)
    assert url in str(error.value)
    assert not (tmp_path / "muse" / "en-de.txt").exists()


def test_download_validates_and_caches(tmp_path):
    source = _write(tmp_path / "served-en-de.txt", "the die\ndog hund\n")
    target = download_muse("de", tmp_path / "cache", url=source.as_uri())
    assert target == tmp_path / "cache" / "muse" / "en-de.txt" and target.read_text() == "the die\ndog hund\n"
    source.unlink()  # a second call must not fetch again
    assert download_muse("de", tmp_path / "cache", url=source.as_uri()) == target
    html = _write(tmp_path / "error.html", "<html><body>Not found</body></html>\n")
    with pytest.raises(LexiconError):
        download_muse("fr", tmp_path / "cache", url=html.as_uri())
    assert not (tmp_path / "cache" / "muse" / "en-fr.txt").exists()


# ---- statistics ----------------------------------------------------------------------------------------------------


def test_coverage_counts_tokens_and_types():
    lexicon = Lexicon.from_pairs([("dog", "hund"), ("red", "rot"), ("new york", "new york")], tgt="de")
    cov = lexicon.coverage(["A red dog.", "The dog runs", "in New York"])
    # tokens: a red dog the dog runs in new york (9); covered: red dog dog new york (5)
    assert (cov.n_tokens, cov.covered_tokens) == (9, 5)
    assert (cov.n_types, cov.covered_types) == (8, 4)
    assert cov.token_share == pytest.approx(5 / 9) and cov.type_share == pytest.approx(0.5)
    no_stop = lexicon.coverage(["A red dog.", "The dog runs"], exclude_stopwords=True)
    assert no_stop.n_tokens < 6 and no_stop.covered_tokens == 3  # "a", "the" are ISO stopwords


def test_coverage_on_real_captions(shared_data):
    with gzip.open(shared_data / "multi30k" / "task1" / "raw" / "val.en.gz", "rt", encoding="utf-8") as handle:
        captions = [line.rstrip("\n") for line in handle][:500]
    cov = load_muse("de", shared_data).coverage(captions)
    assert 0.5 < cov.token_share < 1 and 0.5 < cov.type_share < 1
    assert cov.n_tokens == sum(len(split_words(c)) // 2 for c in captions)


def test_in_memory_lexicon_checks_its_input():
    with pytest.raises(LexiconError, match="never match"):
        Lexicon({"#tag": ["x"]}, "en", "de")
    with pytest.raises(LexiconError, match="no translation"):
        Lexicon({"dog": [" "]}, "en", "de")
    with pytest.raises(LexiconError, match="empty"):
        Lexicon({}, "en", "de")
    lexicon = Lexicon({"Dog": "Hund", "dog": ["hund", "Hund"]}, "en", "de")
    assert lexicon.translations("DOG") == ("Hund", "hund")
