"""Artificial code-switching of captions with bilingual lexicons (Litschko et al. 2023), reproducible and fast.

Modes (``CodeSwitcher(mode=...)``):
- ``bl``: bilingual (BL-CS): each word, with probability p, becomes one of its translations into the one language.
- ``ml``: multilingual (ML-CS): each word, with probability p, picks a language uniformly from the set and becomes
  its translation there if that lexicon has one (else it stays) -- the rule of the paper's code.
- ``multiword``: greedy longest match of 1..3-word phrases (Wikipedia titles), on word boundaries only; a matched
  phrase switches as a unit with probability p (the paper's Wiki-CS used p = 1).
- ``dictionary``: translate-test baseline: p = 1, the first translation, longest match, one language.

Spacing: two adjacent replacements into a language written without spaces (zh, ja, th ...) are joined without a
space when the letters that would meet are in such a script ("little dog" -> "小狗"); a Latin identity entry of the
same lexicon ("DNA") keeps its space. Replacements are stored as the lexicon spells them -- no bidi control characters
are added, since encoders read the text; `switched_html` isolates right-to-left words for display instead.

Randomness: every caption gets its own stream, derived from ``(seed, key)`` where the key is the caption text (or a
caller-given id) -- SHAKE-128 as a counter-based generator, ``k`` 32-bit draws per word at fixed positions. No state
is shared between captions, so output is identical whatever the batching, order or threads, and the same uniforms
are reused for every p (switched sets grow monotonically with p at a fixed seed).
"""

from __future__ import annotations

import functools
import hashlib
import html
import math
import numbers
import sys
import unicodedata
from array import array
from collections import Counter
from dataclasses import dataclass
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import regex

from csr_core.checks import check_seed
from csr_core.errors import CSRError, LexiconError
from csr_core.lexicon import Lexicon, normalize_lang
from csr_core.tokenize import (
    CASE_KEEP,
    NO_SPACE_LANGS,
    apply_case,
    case_class,
    key_of_pieces,
    language_base,
    nfc,
    split_words,
    stopwords,
)

MODES = ("bl", "ml", "multiword", "dictionary")
_MODE_ALIASES = {"bl-cs": "bl", "blcs": "bl", "ml-cs": "ml", "mlcs": "ml", "wiki": "multiword", "wiki-cs": "multiword",
                 "dict": "dictionary", "translate": "dictionary"}
CHOICES = ("random", "first")
_BIG_ENDIAN = sys.byteorder == "big"
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
_CACHE_LIMIT = 1_000_000
#: Scripts written without spaces between words (Han, Kana, and the scripts of th/lo/km/my); Hangul uses spaces.
#: Script extensions also take in the marks those scripts share, such as the Kana length mark "ー".
_NO_SPACE_SCRIPT = regex.compile(r"[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Thai}\p{scx=Lao}\p{scx=Khmer}"
                                 r"\p{scx=Myanmar}]")
_NEUTRAL_MARK = "#e5e7eb"  # a language without a colour of its own
LANG_PALETTE: tuple[str, ...] = ("#fde68a", "#bfdbfe", "#bbf7d0", "#fecaca", "#ddd6fe", "#fbcfe8", "#fed7aa",
                                 "#a5f3fc", "#d9f99d", _NEUTRAL_MARK)


def lang_colors(langs: Iterable[str]) -> dict[str, str]:
    """A stable highlight colour per language, in the order given (for `switched_html`)."""
    return {lang: LANG_PALETTE[i % len(LANG_PALETTE)] for i, lang in enumerate(dict.fromkeys(langs))}


class Span(NamedTuple):
    """One replacement: source words and their replacement, with offsets in `original` and in `text`."""

    source: str
    replacement: str
    lang: str
    src_start: int
    src_end: int
    out_start: int
    out_end: int


class SwitchedText:
    """A code-switched caption. Spans are built lazily (most training calls only need `.text`)."""

    __slots__ = ("text", "original", "n_tokens", "n_content", "n_switched", "n_switched_content", "_switched",
                 "_replacements", "_joined", "_langs", "_spans")

    def __init__(self, text: str, original: str, n_tokens: int, n_content: int, n_switched: int,
                 n_switched_content: int, switched: tuple[int, ...] = (), replacements: tuple[str, ...] = (),
                 joined: tuple[int, ...] = (), langs: tuple[str, ...] = ()) -> None:
        self.text = text
        self.original = original  # NFC form of the input: span source offsets refer to it
        self.n_tokens = n_tokens  # word tokens in the caption
        self.n_content = n_content  # word tokens that are not source-language stopwords
        self.n_switched = n_switched  # word tokens replaced
        self.n_switched_content = n_switched_content  # ... of which not stopwords
        # Flat (first piece, last piece, language index) per replacement, the replacements, and the separator pieces
        # emptied between two no-space-language replacements: atomic tuples keep garbage-collector work low.
        self._switched = switched
        self._replacements = replacements
        self._joined = joined
        self._langs = langs
        self._spans: list[Span] | None = None

    @property
    def switch_ratio(self) -> float:
        """Switched non-stopword tokens / non-stopword tokens (stopwords may switch but are left out, as the paper)."""
        return self.n_switched_content / self.n_content if self.n_content else 0.0

    @property
    def spans(self) -> list[Span]:
        """Replacements in order, with offsets into `original` and `text` (for highlighting)."""
        if self._spans is None:
            self._spans = self._build_spans()
        return self._spans

    @property
    def langs_used(self) -> tuple[str, ...]:
        """Languages that actually appear in this caption's replacements, in order of first use."""
        return tuple(dict.fromkeys(self._langs[li] for li in self._switched[2::3]))

    def _build_spans(self) -> list[Span]:
        if not self._switched:
            return []
        src_pieces = split_words(self.original)
        out_pieces = list(src_pieces)
        entries = list(zip(self._switched[0::3], self._switched[1::3], self._switched[2::3], self._replacements))
        for first, last, _, replacement in entries:
            out_pieces[first] = replacement
            for index in range(first + 1, last + 1):
                out_pieces[index] = ""
        for index in self._joined:
            out_pieces[index] = ""
        src_off = _offsets(src_pieces)
        out_off = _offsets(out_pieces)
        spans = []
        for first, last, li, replacement in entries:
            s0, s1 = src_off[first], src_off[last + 1]
            o0 = out_off[first]
            spans.append(Span(self.original[s0:s1], replacement, self._langs[li], s0, s1, o0, o0 + len(replacement)))
        return spans

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (CLI --format jsonl, dashboard tables)."""
        return {"text": self.text, "original": self.original, "switch_ratio": self.switch_ratio,
                "n_tokens": self.n_tokens, "n_content": self.n_content, "n_switched": self.n_switched,
                "n_switched_content": self.n_switched_content, "spans": [s._asdict() for s in self.spans]}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SwitchedText):
            return NotImplemented
        return (self.text, self.original, self._switched, self._replacements, self._joined, self._langs) == (
            other.text, other.original, other._switched, other._replacements, other._joined, other._langs)

    def __hash__(self) -> int:
        return hash((self.text, self.original))

    def __repr__(self) -> str:
        return f"SwitchedText({self.text!r}, ratio={self.switch_ratio:.2f}, switched={self.n_switched}/{self.n_tokens})"


def _offsets(pieces: list[str]) -> list[int]:
    out = [0]
    total = 0
    for piece in pieces:
        total += len(piece)
        out.append(total)
    return out


def joins_without_space(left: str, right: str) -> bool:
    """Whether the space between two adjacent replacements is dropped: the letters that meet there are both in a
    script written without spaces ("小" + "狗" -> "小狗"), so a Latin identity entry ("DNA 狗") keeps its space."""
    return bool(left and right and _NO_SPACE_SCRIPT.match(left[-1]) and _NO_SPACE_SCRIPT.match(right[0]))


def corpus_switch_ratio(results: Iterable[SwitchedText]) -> float:
    """Switched non-stopword tokens over all non-stopword tokens of a set of captions (the paper's statistic)."""
    switched = content = 0
    for result in results:
        switched += result.n_switched_content
        content += result.n_content
    return switched / content if content else 0.0


class LanguageStats(NamedTuple):
    """One target language over a set of captions; both shares are of all content (non-stopword) word tokens.

    BL-CS gives switch_ratio ~ p x coverage; ML-CS over n languages ~ p x coverage / n, as each word draws its
    language before looking it up.
    """

    lang: str
    switch_ratio: float  # content words switched into this language
    coverage: float  # content words its lexicon translates
    n_switched_content: int
    n_covered: int
    n_content: int


def text_direction(text: str) -> str:
    """"rtl" or "ltr" from the first strong letter (the rule of dir="auto"), "auto" when there is none (digits)."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind == "L":
            return "ltr"
        if kind in ("R", "AL"):
            return "rtl"
    return "auto"


def switched_html(result: SwitchedText, colors: Mapping[str, str]) -> tuple[str, str]:
    """(original, code-switched) caption as escaped HTML blocks (captions are user data), replaced words marked.

    Each highlighted word and its language label sit in a `<bdi>` with the word's own direction, so an Arabic word
    in an English sentence keeps its letters and the punctuation around it in place, and a label (Latin letters)
    never reorders its neighbours. The block's direction is resolved here from the plain text: a browser's
    dir="auto" skips text inside isolates, so an all-Arabic output would otherwise read left to right.
    """
    spans = result.spans
    original = _caption_html(result.original, [(s.src_start, s.src_end, s.lang, f"→ {s.replacement}") for s in spans],
                             colors, "cs-original")
    switched = _caption_html(result.text, [(s.out_start, s.out_end, s.lang, f"{s.source} → {s.replacement}")
                                           for s in spans], colors, "cs-switched")
    return original, switched


def _caption_html(text: str, marks: list[tuple[int, int, str, str]], colors: Mapping[str, str], css_class: str) -> str:
    """`text` escaped, each (start, end, lang, tooltip) mark highlighted; marks are in order and never overlap."""
    direction = text_direction(text)
    parts = [f'<div class="{css_class}" dir="{direction}">']
    cursor = 0
    for start, end, lang, tip in marks:
        word = text[start:end]
        colour = html.escape(colors.get(lang, _NEUTRAL_MARK))
        parts.append(f'{html.escape(text[cursor:start])}<mark class="cs-span" data-lang="{html.escape(lang)}" '
                     f'title="{html.escape(tip)}" style="background:{colour};padding:0 2px;border-radius:3px">'
                     f'<bdi dir="{text_direction(word)}">{html.escape(word)}'
                     f'<sub style="font-size:0.65em;opacity:0.7">{html.escape(lang)}</sub></bdi></mark>')
        cursor = end
    parts.append(f"{html.escape(text[cursor:])}</div>")
    return "".join(parts)


class CodeSwitcher:
    """Switches English captions into other languages word by word; see the module docstring for the modes."""

    def __init__(self, lexicons: Mapping[str, Lexicon] | Sequence[Lexicon], mode: str = "bl", p: float | None = None,
                 seed: int = 0, langs: Sequence[str] | str | None = None, translation_choice: str | None = None,
                 max_n: int = 3) -> None:
        self.mode = _check_mode(mode)
        self.p = _check_p(p, self.mode)
        self.seed = check_seed(seed)
        self.translation_choice = translation_choice or ("first" if self.mode == "dictionary" else "random")
        if self.translation_choice not in CHOICES:
            raise CSRError(f"translation_choice must be one of {', '.join(CHOICES)}, got {translation_choice!r}")
        if self.mode == "dictionary" and self.translation_choice != "first":
            raise CSRError("dictionary mode (translate-test) always takes the first translation")
        if not isinstance(max_n, int) or not 1 <= max_n <= 8:
            raise CSRError(f"max_n must be an integer in [1, 8], got {max_n!r}")
        by_lang = _lexicons_by_lang(lexicons)
        self.langs = _check_langs(langs, by_lang, self.mode)
        self.lexicons = {lang: by_lang[lang] for lang in self.langs}
        sources = {lex.src for lex in self.lexicons.values()}
        if len(sources) != 1:
            raise LexiconError(f"all lexicons must share one source language, got {', '.join(sorted(sources))}")
        self.src = sources.pop()
        self._stop = stopwords(self.src)
        self._tables = tuple(self.lexicons[lang]._table for lang in self.langs)
        self._max_n = min(max_n, max(lex.max_ngram for lex in self.lexicons.values()))
        if self.mode in ("bl", "ml"):
            self._max_n = 1
        self._threshold = round(self.p * 2**32)
        self._first = self.translation_choice == "first"
        self._needs_draws = 0.0 < self.p and not (self.p == 1.0 and self._first and len(self.langs) == 1)
        self._no_space = frozenset(i for i, lang in enumerate(self.langs) if language_base(lang) in NO_SPACE_LANGS)
        self._prefix = f"csr-codeswitch\x1f{self.seed}\x1f".encode()
        self._cache: dict[str, tuple] = {}
        self._single = self.mode in ("bl", "dictionary")  # one language: cache translations, not per-language tuples

    # ---- public API ------------------------------------------------------------------------------------------------

    @property
    def stopwords(self) -> frozenset[str]:
        """The source-language stopwords left out of the switch ratio (the explorer lists them)."""
        return frozenset(self._stop)

    @property
    def params(self) -> dict[str, Any]:
        """What a results manifest needs to reproduce this switching."""
        return {"cs_mode": self.mode, "cs_p": self.p, "cs_langs": ",".join(self.langs), "seed": self.seed,
                "translation_choice": self.translation_choice,
                "lexicons": {lang: lex.fingerprint for lang, lex in self.lexicons.items()}}

    def switch(self, text: str, key: int | str | None = None) -> SwitchedText:
        """Switch one caption; its randomness depends only on (seed, key), key defaulting to the caption text."""
        if not isinstance(text, str):
            raise CSRError(f"a caption must be a string, got {type(text).__name__}")
        text = nfc(text)
        if key is None:
            key_bytes = b"t\x1f" + text.encode("utf-8", "surrogatepass")
        else:
            key_bytes = b"k\x1f" + str(key).encode("utf-8", "surrogatepass")
        if self._max_n > 1:
            return self._switch_phrases(text, key_bytes)
        if self._single:
            return self._switch_bl(text, key_bytes)
        return self._switch_ml(text, key_bytes)  # also multiword over single words: the same rule, same draws

    def switch_batch(self, texts: Iterable[str], keys: Iterable[int | str] | None = None) -> list[SwitchedText]:
        """Switch many captions; identical to calling `switch` on each, whatever the batch boundaries."""
        switch = self.switch
        if keys is None:
            return [switch(text) for text in texts]
        texts = list(texts)
        keys = list(keys)
        if len(keys) != len(texts):
            raise CSRError(f"switch_batch got {len(texts)} captions but {len(keys)} keys")
        return [switch(text, key) for text, key in zip(texts, keys)]

    def language_stats(self, results: Sequence[SwitchedText]) -> list[LanguageStats]:
        """Switch ratio and lexicon coverage per target language over captions this switcher switched, stopwords
        left out as in `corpus_switch_ratio` (the per-language ratios add up to it)."""
        switched: Counter[str] = Counter()
        stop = self._stop
        for result in results:
            if not result._switched:
                continue
            words = split_words(result.original)
            flat = result._switched
            for first, last, li in zip(flat[0::3], flat[1::3], flat[2::3]):
                switched[result._langs[li]] += sum(words[i].lower() not in stop for i in range(first, last + 1, 2))
        n_content = sum(result.n_content for result in results)
        originals = [result.original for result in results]
        stats = []
        for lang, lexicon in self.lexicons.items():
            coverage = lexicon.coverage(originals, exclude_stopwords=True, max_n=self._max_n)
            ratio = switched[lang] / n_content if n_content else 0.0
            stats.append(LanguageStats(lang, ratio, coverage.token_share, switched[lang], coverage.covered_tokens,
                                       n_content))
        return stats

    # ---- internals -------------------------------------------------------------------------------------------------

    def _draws(self, key_bytes: bytes, count: int) -> Sequence[int]:
        """`count` uniform 32-bit integers for one caption (all zeros when no randomness is needed)."""
        if not self._needs_draws:
            return _zeros(count)
        draws = array(_U32, hashlib.shake_128(self._prefix + key_bytes).digest(4 * count))
        if _BIG_ENDIAN:
            draws.byteswap()
        return draws.tolist()

    def _words_and_draws(self, text: str, key_bytes: bytes, per_word: int) -> tuple[list[str], int, Sequence[int]]:
        """(pieces, n words, `per_word` draws per word): pieces alternate separator/word, words at odd indices."""
        pieces = split_words(text)
        n = len(pieces) >> 1
        return pieces, n, self._draws(key_bytes, per_word * n)

    def _info(self, word: str) -> tuple:
        """(is_content, translations) for one surface form, capitalisation already applied; cached."""
        lower = word.lower()
        cls = case_class(word)
        per_lang: list[tuple[str, ...] | None] = []
        for table in self._tables:
            found = table.get(lower)
            if found is not None and cls != CASE_KEEP:
                found = tuple(apply_case(t, cls) for t in found)
            per_lang.append(found)
        content = lower not in self._stop
        info: tuple
        if self._single:
            info = (content, per_lang[0])
        else:
            info = (content, tuple(per_lang) if any(t is not None for t in per_lang) else None)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[word] = info
        return info

    def _finish(self, text: str, pieces: list[str], n: int, n_content: int, n_switched: int, n_sw_content: int,
                switched: list[int]) -> SwitchedText:
        """`switched` is flat: first piece, last piece, language index per replacement."""
        if not switched:
            return SwitchedText(text, text, n, n_content, 0, 0, (), (), (), self.langs)
        joined: list[int] = []
        if self._no_space and len(switched) > 3:
            no_space = self._no_space
            for r in range(0, len(switched) - 3, 3):
                a_last, la, b_first, lb = switched[r + 1], switched[r + 2], switched[r + 3], switched[r + 5]
                if la in no_space and lb in no_space and b_first == a_last + 2 and pieces[a_last + 1].isspace() \
                        and joins_without_space(pieces[switched[r]], pieces[b_first]):
                    pieces[a_last + 1] = ""
                    joined.append(a_last + 1)
        replacements = tuple([pieces[first] for first in switched[0::3]])
        return SwitchedText("".join(pieces), text, n, n_content, n_switched, n_sw_content, tuple(switched),
                            replacements, tuple(joined), self.langs)

    def _switch_bl(self, text: str, key_bytes: bytes) -> SwitchedText:
        pieces, n, draws = self._words_and_draws(text, key_bytes, 2)
        cache_get = self._cache.get
        make = self._info
        threshold = self._threshold
        first = self._first
        switched: list[int] = []
        n_content = n_sw_content = 0
        for i, word, u, c in zip(range(1, 2 * n, 2), pieces[1::2], draws[0::2], draws[1::2]):
            content, trans = cache_get(word) or make(word)
            n_content += content
            if u < threshold and trans is not None:
                pieces[i] = trans[0] if first or len(trans) == 1 else trans[c % len(trans)]
                switched += (i, i, 0)
                n_sw_content += content
        return self._finish(text, pieces, n, n_content, len(switched) // 3, n_sw_content, switched)

    def _switch_ml(self, text: str, key_bytes: bytes) -> SwitchedText:
        pieces, n, draws = self._words_and_draws(text, key_bytes, 3)
        cache_get = self._cache.get
        make = self._info
        threshold = self._threshold
        first = self._first
        n_langs = len(self._tables)
        switched: list[int] = []
        n_content = n_sw_content = 0
        for i, word, u, lr, c in zip(range(1, 2 * n, 2), pieces[1::2], draws[0::3], draws[1::3], draws[2::3]):
            content, per_lang = cache_get(word) or make(word)
            n_content += content
            if u < threshold and per_lang is not None:
                li = lr % n_langs
                trans = per_lang[li]
                if trans is not None:
                    pieces[i] = trans[0] if first or len(trans) == 1 else trans[c % len(trans)]
                    switched += (i, i, li)
                    n_sw_content += content
        return self._finish(text, pieces, n, n_content, len(switched) // 3, n_sw_content, switched)

    def _switch_phrases(self, text: str, key_bytes: bytes) -> SwitchedText:
        """Greedy longest match of 1..max_n word phrases; a phrase switches as a unit."""
        pieces, n, draws = self._words_and_draws(text, key_bytes, 3)
        source_pieces = list(pieces)
        content = [w.lower() not in self._stop for w in pieces[1::2]]
        tables = self._tables
        n_langs = len(tables)
        switched: list[int] = []
        n_switched = n_sw_content = 0
        j = 0
        while j < n:
            b = 3 * j
            li = draws[b + 1] % n_langs
            table = tables[li]
            match = 0
            trans: tuple[str, ...] | None = None
            for m in range(min(self._max_n, n - j), 0, -1):
                trans = table.get(key_of_pieces(source_pieces, 2 * j + 1, 2 * (j + m) - 1))
                if trans is not None:
                    match = m
                    break
            if not match or trans is None:
                j += 1
                continue
            if draws[b] < self._threshold:
                first_i, last_i = 2 * j + 1, 2 * (j + match) - 1
                k = len(trans)
                choice = trans[0] if self._first or k == 1 else trans[draws[b + 2] % k]
                cls = case_class("".join(source_pieces[first_i:last_i + 1]))
                pieces[first_i] = apply_case(choice, cls)
                for index in range(first_i + 1, last_i + 1):
                    pieces[index] = ""
                switched += (first_i, last_i, li)
                n_switched += match
                n_sw_content += sum(content[j:j + match])
            j += match
        return self._finish(text, pieces, n, sum(content), n_switched, n_sw_content, switched)


def _zeros(count: int) -> list[int]:
    return [0] * count


# --------------------------------------------------------------------------------------------------------------------
# argument checks (clear errors naming the bad value)


def _check_mode(mode: str) -> str:
    if not isinstance(mode, str):
        raise CSRError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    name = _MODE_ALIASES.get(mode.strip().lower(), mode.strip().lower())
    if name not in MODES:
        raise CSRError(f"unknown code-switching mode {mode!r}; choose one of {', '.join(MODES)}")
    return name


def _check_p(p: float | None, mode: str) -> float:
    if p is None:
        return 1.0 if mode == "dictionary" else 0.5
    if isinstance(p, bool) or not isinstance(p, numbers.Real):
        raise CSRError(f"switching probability p must be a number in [0, 1], got {p!r}")
    value = float(p)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise CSRError(f"switching probability p must be in [0, 1], got {p!r}")
    if mode == "dictionary" and value != 1.0:
        raise CSRError(f"dictionary mode (translate-test) switches every word it can: p must be 1, got {p!r}")
    return value




def _lexicons_by_lang(lexicons: Mapping[str, Lexicon] | Sequence[Lexicon]) -> dict[str, Lexicon]:
    if isinstance(lexicons, Lexicon):
        lexicons = [lexicons]
    if isinstance(lexicons, Mapping):
        items = list(lexicons.items())
    else:
        items = []
        for lexicon in lexicons:
            if not isinstance(lexicon, Lexicon) or not lexicon.tgt:
                raise LexiconError(f"pass lexicons as {{lang: Lexicon}} (got {lexicon!r} without a target language)")
            items.append((lexicon.tgt, lexicon))
    out: dict[str, Lexicon] = {}
    for lang, lexicon in items:
        if not isinstance(lexicon, Lexicon):
            raise LexiconError(f"lexicon for {lang!r} is a {type(lexicon).__name__}, not a Lexicon")
        code = normalize_lang(lang)
        if lexicon.tgt and lexicon.tgt != code:
            raise LexiconError(f"lexicon {lexicon.name} translates into {lexicon.tgt!r} but was given for {lang!r}")
        out[code] = lexicon
    return out


def _check_langs(langs: Sequence[str] | str | None, by_lang: Mapping[str, Lexicon], mode: str) -> tuple[str, ...]:
    if langs is None:
        chosen = list(by_lang)
    else:
        if isinstance(langs, str):
            langs = [part for part in langs.replace(" ", ",").split(",") if part]
        chosen = [normalize_lang(lang) for lang in langs]
    if not chosen:
        raise CSRError("the language set is empty: give at least one target language (and its lexicon)")
    repeated = sorted({lang for lang in chosen if chosen.count(lang) > 1})
    if repeated:
        raise CSRError(f"language(s) {', '.join(repeated)} listed more than once")
    missing = [lang for lang in chosen if lang not in by_lang]
    if missing:
        loaded = ", ".join(by_lang) or "none"
        raise LexiconError(f"no lexicon loaded for {', '.join(missing)} (loaded: {loaded}); load one, e.g. "
                           f"load_muse('{missing[0]}')")
    if mode in ("bl", "dictionary") and len(chosen) != 1:
        hint = "use mode='ml' for several languages" if mode == "bl" else "translate into one language at a time"
        raise CSRError(f"{mode} mode switches into exactly one language, got {', '.join(chosen)}: {hint}")
    return tuple(chosen)


# ---- what the explorer reports about one switched caption -------------------------------------------------------
@dataclass(frozen=True)
class SwitchFacts:
    """Counts that agree with `SwitchedText.switch_ratio` (content words), plus what a reader should not miss:
    replacements identical to their source (a lexicon's identity pairs: *rainbow → rainbow*) and, in multiword
    mode, how many phrases switched as one unit."""

    n_content: int
    n_switched_content: int
    n_words: int
    n_switched_words: int
    n_identity: int
    n_phrases: int


def switch_facts(result: SwitchedText) -> SwitchFacts:
    spans = result.spans
    return SwitchFacts(
        n_content=result.n_content, n_switched_content=result.n_switched_content,
        n_words=result.n_tokens, n_switched_words=result.n_switched,
        n_identity=sum(s.replacement.casefold() == s.source.casefold() for s in spans),
        n_phrases=sum(len(s.source.split()) > 1 for s in spans))


@functools.lru_cache(maxsize=1)
def _rtl_run():
    import regex

    rtl = r"\p{Bidi_Class=R}\p{Bidi_Class=AL}"
    return regex.compile(rf"[{rtl}](?:[{rtl}\p{{M}}\s]*[{rtl}\p{{M}}])?")


def bidi_isolated(text: str) -> str:
    """`text` with each run of right-to-left words (Arabic, Hebrew…) wrapped in Unicode isolates (FSI … PDI), so a
    table cell mixing English and Arabic keeps both in reading order (an HTML view uses `<bdi>`; a dataframe cell
    cannot). Text without RTL characters is returned unchanged."""
    return _rtl_run().sub(lambda m: f"\u2068{m.group(0)}\u2069", text)
