"""Translate-test: the inverted dictionary, Chinese segmentation, and the setting end to end (a real tiny open_clip
model; its ranks equal those of the translated captions encoded directly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from csr_core.lexicon import Lexicon
from csr_core.translate_test import segment, word_by_word

TINY = "open_clip-config:" + str(Path(__file__).parent / "assets" / "csr-test-tiny-vit.json")


def test_inverted_lexicon_maps_translations_back_in_file_order():
    lex = Lexicon({"dog": ["Hund"], "hound": ["Hund"], "run": ["rennen", "laufen"]}, "en", "de")
    back = lex.inverted()
    assert (back.src, back.tgt) == ("de", "en")
    assert back.translations("Hund") == ("dog", "hound") and back.translations("laufen") == ("run",)
    out = word_by_word(["Ein Hund"], "de", back)
    assert out.texts == ["Ein dog"] and out.token_share == 0.5


def test_chinese_is_segmented_into_words_before_lookup():
    assert segment(["一只黑狗在草地上奔跑。"], "zh") == ["一只 黑狗 在 草地 上 奔跑 。"]
    assert segment(["ein Hund"], "de") == ["ein Hund"]
    lex = Lexicon({"grass": ["草地"], "run": ["奔跑"]}, "en", "zh").inverted()
    assert word_by_word(["黑狗在草地上奔跑"], "zh", lex).texts == ["黑狗 在 grass 上 run"]


def test_translate_test_setting_ranks_the_translated_captions(shared_data):
    from csr_core.datasets import load_dataset
    from csr_core.encoders.registry import load_encoder
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.metrics import first_hit_ranks
    from csr_core.translate_test import reverse_lexicon

    encoder = load_encoder(TINY)
    test_set = load_dataset("flickr8k-multi30k", split="test", data_root=shared_data).subset(30)
    config = EvalConfig(model=TINY, dataset="flickr8k-multi30k", langs=["en", "de", "fr"],
                        settings=["translate-test"], n_resamples=50)
    out = run_evaluation(config, encoder=encoder, dataset=test_set, write=False)
    assert set(out.rows["query_lang"]) == {"de", "fr"}  # English is not translated
    assert any(note.startswith("translate-test de:") and "% of word tokens translated" in note for note in out.notes)
    flat = test_set.flat("de")
    translated = word_by_word(flat.texts, "de", reverse_lexicon("de")).texts
    assert translated != list(flat.texts)
    expected = first_hit_ranks(encoder.encode_texts(translated), encoder.encode_images(test_set.image_paths),
                               np.asarray(flat.caption_image), np.arange(len(test_set)))
    got = out.ranks[(out.ranks["setting"] == "translate-test") & (out.ranks["query_lang"] == "de")]
    assert got["rank"].tolist() == expected.tolist()
