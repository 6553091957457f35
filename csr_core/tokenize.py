"""Unicode-aware word tokenisation shared by lexicons and code-switching, so coverage and switching agree.

A text is split into alternating *separators* and *words*: ``split_words(text)`` returns a list whose even items are
separators (whitespace, punctuation, possibly empty) and whose odd items are words, so ``"".join(pieces) == text``.
A word is a run of letters/digits (``\\p{L}\\p{M}\\p{N}``) that may contain inner hyphens and apostrophes
(``T-shirt``, ``don't``, ``o'clock``); English clitics (``'s 're 've 'll 'd 'm``) are left in the separator, as the
Treebank tokenizer used by Litschko et al. splits them off (``man's`` -> ``man`` + ``'s``). Replacements only ever
swap whole words or runs of whole words, so nothing is ever replaced inside a word.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import NamedTuple

import regex


def _word_pattern(alnum: str, start: str) -> str:
    clitic = rf"(?:[sSdDmM]|[rR][eE]|[vV][eE]|[lL][lL])(?![{alnum}])"
    # Fixed-width look-behinds stop a word from starting inside a clitic ("they're" -> "they" + "'re").
    return (
        rf"(?<![{alnum}]['’])(?<![{alnum}]['’][{alnum}])[{start}][{alnum}]*"
        rf"(?:(?:-|['’](?!{clitic}))[{start}][{alnum}]*)*"
    )


#: Full Unicode splitter (the `regex` package: `\p{..}` classes).
WORD_SPLIT = regex.compile("(" + _word_pattern(r"\p{L}\p{M}\p{N}", r"\p{L}\p{N}") + ")")
#: The same grammar restricted to ASCII, with the stdlib engine: about twice as fast and identical on ASCII text.
_ASCII_SPLIT = re.compile("(" + _word_pattern("A-Za-z0-9", "A-Za-z0-9") + ")")

#: Languages written without spaces between words: two adjacent replacements in them are joined without a space.
NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "yue", "wuu"})

_WS = re.compile(r"\s+")

# Case classes of a source word, restored on its replacement.
CASE_KEEP, CASE_TITLE, CASE_UPPER = 0, 1, 2


class Token(NamedTuple):
    """One piece of a text with its character offsets; `is_word` says whether it can be switched."""

    text: str
    start: int
    end: int
    is_word: bool


def split_words(text: str) -> list[str]:
    """Alternating separators (even indices) and words (odd indices); joining them gives `text` back."""
    if text.isascii():
        return _ASCII_SPLIT.split(text)
    return WORD_SPLIT.split(text)


def tokenize(text: str) -> list[Token]:
    """Every piece of `text` (words and non-empty separators) with offsets, for display and for tests."""
    out: list[Token] = []
    pos = 0
    for index, piece in enumerate(split_words(text)):
        if piece:
            out.append(Token(piece, pos, pos + len(piece), bool(index & 1)))
            pos += len(piece)
    return out


def words(text: str) -> list[str]:
    """Only the word tokens of `text`."""
    return split_words(text)[1::2]


def nfc(text: str) -> str:
    """Unicode NFC, cheap on text that is already normalised (the common case)."""
    return text if unicodedata.is_normalized("NFC", text) else unicodedata.normalize("NFC", text)


def case_class(word: str) -> int:
    """UPPER (two or more cased letters, all upper), Title/sentence-initial (first letter upper), or keep."""
    if not word[:1].isupper():
        return CASE_KEEP
    if len(word) > 1 and word.isupper():
        return CASE_UPPER
    return CASE_TITLE


def apply_case(replacement: str, cls: int) -> str:
    """Give `replacement` the source word's capitalisation (no-op for scripts without case)."""
    if cls == CASE_TITLE:
        return replacement[:1].title() + replacement[1:]
    if cls == CASE_UPPER:
        return replacement.upper()
    return replacement


def phrase_key(text: str) -> tuple[str, int]:
    """Lookup key of a (possibly multiword) lexicon entry and its number of words.

    Lowercase NFC with whitespace runs collapsed to one space, so an n-gram of caption words separated by the same
    punctuation finds it. The word count is 0 when the key can never line up with caption words: it holds no word,
    or starts/ends with punctuation ("#the", "man's").
    """
    key = _WS.sub(" ", nfc(text)).strip().lower()
    pieces = split_words(key)
    if len(pieces) < 3 or pieces[0] or pieces[-1]:
        return key, 0
    return key, len(pieces) // 2


def key_of_pieces(pieces: list[str], first: int, last: int) -> str:
    """The `phrase_key` of the words `pieces[first..last]` (odd indices) of a split text, without re-tokenising."""
    if first == last:
        return pieces[first].lower()
    parts = []
    for index in range(first, last + 1):
        piece = pieces[index]
        if index & 1:
            parts.append(piece.lower())
        else:
            parts.append(_WS.sub(" ", piece))
    return "".join(parts)


def language_base(code: str) -> str:
    """Primary language subtag ("zh-Hans" -> "zh"), used to decide spacing of replacements."""
    return code.split("-", 1)[0].split("_", 1)[0].lower()


@functools.lru_cache(maxsize=64)
def stopwords(lang: str) -> frozenset[str]:
    """Lowercase stopwords of `lang` from the `stopwordsiso` package; empty when it has no list for that language."""
    import stopwordsiso

    base = language_base(lang)
    if not stopwordsiso.has_lang(base):
        return frozenset()
    return frozenset(nfc(word).lower() for word in stopwordsiso.stopwords(base))
