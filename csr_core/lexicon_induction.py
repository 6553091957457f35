"""Induced bilingual lexicons: EN -> X by nearest neighbour over a multilingual encoder's word embeddings.

Litschko et al. did not code-switch with a curated dictionary: they induced their lexicons by 1-NN over cross-lingual
word embeddings. Here the embeddings are multilingual-e5-small's, of each word on its own ("query: <word>"):

- source words: the English word types of the training captions (lowercase, no stopwords, at least `min_count`
  occurrences), so every word the switcher could switch has an entry;
- target candidates: X's word list, taken from the first `n_sources` entries of the MUSE EN->X file (frequency
  ordered), i.e. MUSE is used as a vocabulary, not for its pairs;
- each source word gets its cosine nearest candidate (no identity: a candidate spelled as the source is skipped).

BLI precision@1 against MUSE's pairs (source words MUSE covers; a hit when the induced word is any MUSE translation)
says how good the induced dictionary is. Induced lexicons are cached under `CSR_CACHE_DIR/induced-lexicons/`.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from csr_core import _io
from csr_core.errors import CSRError
from csr_core.lexicon import Lexicon

EncodeFn = Callable[[list[str]], np.ndarray]
VERSION = 1


@dataclass(frozen=True)
class Induced:
    lexicon: Lexicon
    precision_at_1: float  # BLI P@1 against MUSE over the source words MUSE covers
    n_evaluated: int
    n_sources: int
    n_candidates: int


def caption_vocabulary(captions: Iterable[str], min_count: int = 2, lang: str = "en") -> list[str]:
    """Lowercase word types of `captions` seen at least `min_count` times, stopwords left out, most frequent first."""
    from csr_core.tokenize import split_words, stopwords

    stop = stopwords(lang)
    counts: Counter[str] = Counter()
    for caption in captions:
        for word in split_words(caption)[1::2]:
            lower = word.lower()
            if lower.isalpha() and lower not in stop:
                counts[lower] += 1
    return [w for w, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if n >= min_count]


def muse_candidates(lexicon: Lexicon, n_sources: int = 10000) -> list[str]:
    """X's word list: the distinct single-word translations of the lexicon's first `n_sources` entries (file order)."""
    out: dict[str, None] = {}
    for i, values in enumerate(lexicon.table.values()):
        if i >= n_sources:
            break
        for value in values:
            if " " not in value:
                out.setdefault(value, None)
    return list(out)


def nearest(sources: Sequence[str], candidates: Sequence[str], encode: EncodeFn) -> dict[str, str]:
    """Each source word's cosine-nearest candidate (skipping a candidate identical to the source)."""
    if not sources or not candidates:
        raise CSRError("lexicon induction needs source words and target candidates")
    src = _unit(encode(list(sources)))
    tgt = _unit(encode(list(candidates)))
    index = {c: i for i, c in enumerate(candidates)}
    out = {}
    for lo in range(0, len(sources), 1024):
        sims = src[lo:lo + 1024] @ tgt.T
        for row, word in enumerate(sources[lo:lo + 1024]):
            if word in index:
                sims[row, index[word]] = -np.inf
            out[word] = candidates[int(np.argmax(sims[row]))]
    return out


def bli_precision_at_1(induced: dict[str, str], gold: Lexicon) -> tuple[float, int]:
    """Share of the induced pairs whose source MUSE covers and whose target is one of MUSE's translations."""
    covered = [(s, t) for s, t in induced.items() if gold.translations(s)]
    if not covered:
        return float("nan"), 0
    hits = sum(t in gold.translations(s) for s, t in covered)
    return hits / len(covered), len(covered)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def induce(sources: Sequence[str], muse: Lexicon, encode: EncodeFn, *, n_sources: int = 10000,
           name: str = "") -> Induced:
    """Induce EN -> muse.tgt for `sources` with `encode`, scored against `muse`."""
    candidates = muse_candidates(muse, n_sources)
    pairs = nearest(sources, candidates, encode)
    p1, n = bli_precision_at_1(pairs, muse)
    lexicon = Lexicon({s: [t] for s, t in pairs.items()}, src="en", tgt=muse.tgt,
                      name=name or f"en-{muse.tgt} (induced, 1-NN)")
    return Induced(lexicon, p1, n, len(pairs), len(candidates))


def induced_lexicon(lang: str, sources: Sequence[str], *, tower=None, n_sources: int = 10000,
                    cache_dir: Path | None = None) -> Induced:
    """The EN -> `lang` lexicon induced with multilingual-e5-small's word embeddings (cached on disk by inputs)."""
    from csr_core.encoders.csr_mini import _shared_tower, cached_tower_texts
    from csr_core.lexicon import load_muse
    from csr_core.paths import cache_dir as default_cache

    muse = load_muse(lang)
    tower = tower or _shared_tower("e5", "cpu")
    key = hashlib.sha256(json.dumps([VERSION, lang, muse.fingerprint, tower.fingerprint, n_sources, list(sources)],
                                    ensure_ascii=False).encode()).hexdigest()[:20]
    path = (cache_dir or default_cache() / "induced-lexicons") / f"en-{lang}-{key}.json"
    if path.is_file():
        data = _io.read_json_file(path, "induced-lexicon cache")
        lexicon = Lexicon({s: [t] for s, t in data["pairs"].items()}, src="en", tgt=lang,
                          name=f"en-{lang} (induced, 1-NN)")
        return Induced(lexicon, data["p_at_1"], data["n_evaluated"], data["n_sources"], data["n_candidates"])
    result = induce(sources, muse, lambda words: cached_tower_texts(tower, words))

    _io.atomic_write_text(path, json.dumps({"pairs": {s: t[0] for s, t in result.lexicon.table.items()},
                                            "p_at_1": result.precision_at_1, "n_evaluated": result.n_evaluated,
                                            "n_sources": result.n_sources, "n_candidates": result.n_candidates},
                                           ensure_ascii=False))
    return result
