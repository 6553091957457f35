"""Translate-test: queries in language X translated word by word into English with the inverted MUSE EN->X
dictionary, then retrieved with the model as if they were English (the cheap baseline cross-lingual retrieval papers
set beside zero-shot transfer; Litschko et al. compare code-switched training against it).

Longest dictionary match, first sense; words without an entry stay as they are. Chinese has no spaces: it is
segmented with jieba first, so dictionary entries can match words.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import NamedTuple, Sequence

from csr_core.lexicon import Lexicon, load_muse
from csr_core.tokenize import NO_SPACE_LANGS, language_base

#: Languages whose text needs word segmentation before dictionary lookup, and the segmenter used.
SEGMENTERS = {"zh": "jieba"}


class Translated(NamedTuple):
    texts: list[str]
    token_share: float  # share of the queries' word tokens that the dictionary translated


@lru_cache(maxsize=8)
def reverse_lexicon(lang: str) -> Lexicon:
    """X -> EN: the inverted MUSE EN -> X dictionary from the data folder."""
    return load_muse(lang).inverted()


def segment(texts: Sequence[str], lang: str) -> list[str]:
    """Words separated by spaces (jieba for Chinese); other languages unchanged."""
    base = language_base(lang)
    if base not in NO_SPACE_LANGS:
        return list(texts)
    if base not in SEGMENTERS:
        return list(texts)
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return [" ".join(w for w in jieba.cut(t) if w.strip()) for t in texts]


def word_by_word(texts: Sequence[str], lang: str, lexicon: Lexicon | None = None) -> Translated:
    """`texts` in `lang` translated word by word into the lexicon's target (English by default)."""
    from csr_core.codeswitch import CodeSwitcher

    lexicon = lexicon or reverse_lexicon(lang)
    switcher = CodeSwitcher([lexicon], mode="dictionary", langs=[lexicon.tgt])
    results = switcher.switch_batch(segment(texts, lang))
    n_tokens = sum(r.n_tokens for r in results)
    share = sum(r.n_switched for r in results) / n_tokens if n_tokens else 0.0
    return Translated([_english_case(r, lexicon) for r in results], share)


def _english_case(result, lexicon: Lexicon) -> str:
    """The dictionary's own casing for translated words (German nouns are capitalised, their English is not); the
    first word of a caption keeps its capital."""
    text, pieces, last = result.text, [], 0
    for span in result.spans:
        found = lexicon.translations(span.source)
        word = found[0] if found else span.replacement
        if span.src_start == 0 and span.source[:1].isupper():
            word = word[:1].upper() + word[1:]
        pieces += [text[last:span.out_start], word]
        last = span.out_end
    return "".join(pieces) + text[last:]
