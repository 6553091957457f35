"""Lexicon induction by 1-NN over word embeddings, and BLI precision@1 against a gold dictionary, with an encoder
whose embeddings are planted (translations share a direction), so the right answer is known."""

from __future__ import annotations

import numpy as np

from csr_core.lexicon import Lexicon
from csr_core.lexicon_induction import bli_precision_at_1, caption_vocabulary, induce, muse_candidates, nearest
from csr_core.training.arms import parse_arm

CONCEPTS = {"dog": "Hund", "cat": "Katze", "grass": "Gras", "ball": "Ball", "red": "rot", "water": "Wasser"}


def planted_encoder(confuse: dict[str, str] | None = None):
    """Each concept a random unit direction; a German word sits near its English concept (or a confused one)."""
    rng = np.random.default_rng(0)
    direction = {en: rng.normal(size=16) for en in CONCEPTS}
    by_word = {en: v for en, v in direction.items()}
    for en, de in CONCEPTS.items():
        target = (confuse or {}).get(en, en)
        by_word[de] = direction[target] + 0.05 * rng.normal(size=16)
    by_word["Ding"] = rng.normal(size=16)  # a distractor near nothing

    def encode(words: list[str]) -> np.ndarray:
        return np.stack([by_word[w] for w in words])

    return encode


def test_nearest_neighbour_recovers_planted_translations():
    candidates = list(CONCEPTS.values()) + ["Ding"]
    pairs = nearest(list(CONCEPTS), candidates, planted_encoder())
    assert pairs == CONCEPTS


def test_bli_precision_counts_only_words_the_gold_dictionary_covers():
    gold = Lexicon({en: [de] for en, de in CONCEPTS.items() if en != "water"}, "en", "de")
    induced = dict(CONCEPTS, dog="Katze")  # one wrong, one (water) not in gold
    p, n = bli_precision_at_1(induced, gold)
    assert n == 5 and p == 4 / 5


def test_induce_scores_a_confused_encoder_lower_and_builds_a_usable_lexicon():
    muse = Lexicon({en: [de] for en, de in CONCEPTS.items()} | {"thing": ["Ding"]}, "en", "de")
    assert muse_candidates(muse, n_sources=3) == ["Hund", "Katze", "Gras"]
    good = induce(list(CONCEPTS), muse, planted_encoder())
    bad = induce(list(CONCEPTS), muse, planted_encoder(confuse={"dog": "cat", "cat": "dog"}))
    assert good.precision_at_1 == 1.0 and bad.precision_at_1 == 4 / 6  # Hund and Katze swapped
    assert good.lexicon.translations("dog") == ("Hund",) and good.n_candidates == 7


def test_caption_vocabulary_and_the_induced_arm():
    vocab = caption_vocabulary(["A dog on the grass.", "The dog and a red ball", "grass"], min_count=2)
    assert vocab == ["dog", "grass"]  # stopwords out, counted case-insensitively, most frequent first
    spec = parse_arm("ind-mlcs-de-fr-pt-zh-ar")
    assert spec.induced and spec.switched and "induced" in spec.describe
