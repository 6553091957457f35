"""Helpers shared by test modules (importable as `testsupport`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from csr_core.results import ResultsStore, build_manifest, make_rows


def skip_or_fail(reason: str) -> None:
    """Skip where a test's environment is missing on a developer's machine; under CI (CI=true) that is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the test environment must provide it)")
    pytest.skip(reason)


def _bytes_to_unicode() -> list[str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to a printable character."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _tiny_clip_tokenizer():
    """A real byte-level BPE CLIPTokenizer with a tiny vocab: every byte, its end-of-word form, a few merges."""
    from transformers import CLIPTokenizer

    chars = _bytes_to_unicode()
    vocab: dict[str, int] = {}
    for c in chars + [c + "</w>" for c in chars]:
        vocab[c] = len(vocab)
    merges = [("d", "o"), ("do", "g</w>"), ("t", "h"), ("th", "e</w>"), ("o", "n</w>")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges), vocab


def build_tiny_clip(folder):
    """A real transformers CLIPModel (2 layers, 32-d, seeded init; the caller's global RNG untouched), its tiny
    byte-level BPE tokenizer and image processor, saved into `folder`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    tok, vocab = _tiny_clip_tokenizer()
    eos = vocab["<|endoftext|>"]
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=77,
                         bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    with torch.random.fork_rng():  # seeded init without touching the caller's global RNG state
        torch.manual_seed(0)
        CLIPModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


WORDS = ['a', 'dog', 'the', 'runs', 'on', 'beach', 'two', 'dogs', 'play', 'in', 'snow', 'man', 'woman']


def _tiny_bert_tokenizer(folder: Path):
    from transformers import BertTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *letters, *("##" + c for c in letters), *WORDS]
    vocab = list(dict.fromkeys(vocab))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(vocab_file=str(folder / "vocab.txt")), len(vocab)


def build_tiny_blip(folder):
    """A real transformers BlipForImageTextRetrieval (2 layers, 32-d, seeded init), its tiny WordPiece tokenizer and
    image processor, saved into `folder`."""
    import torch
    from transformers import BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor

    tok, n_vocab = _tiny_bert_tokenizer(folder)
    cfg = BlipConfig(
        text_config=dict(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, encoder_hidden_size=32,
                         pad_token_id=0, bos_token_id=2, sep_token_id=3),
        # BLIP's vision default initializer_range is 1e-10 (near-zero weights: every image would look alike)
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8, initializer_range=0.02),
        image_text_hidden_size=16,
        projection_dim=16,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        BlipForImageTextRetrieval(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    BlipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def assert_evaluates_and_guards_training_photos(model_name: str, results_dir: Path) -> None:
    """A fine-tuned model resolves by the name its trainer printed and evaluates on the test photos; the leakage guard
    refuses the training split, whose photos it was trained on."""
    from csr_core.errors import DataError
    from csr_core.evaluate import EvalConfig, run_evaluation
    from csr_core.results import ResultsStore

    store = ResultsStore(results_dir)
    run = run_evaluation(EvalConfig(model=model_name, dataset="flickr8k-multi30k", split="test", langs=("en", "de"),
                                    max_images=12, n_resamples=50), store=store)
    assert set(run.rows["query_lang"]) >= {"en", "de"}
    with pytest.raises(DataError, match="training"):
        run_evaluation(EvalConfig(model=model_name, dataset="flickr8k-multi30k", split="train", langs=("en",),
                                  max_images=40, n_resamples=50), store=store)


# ---- experiment-2 runs with planted effects (design report and dashboard tests) -------------------------------

PLANTED_LANGS = ("en", "de", "fr", "pt", "cs", "zh", "ar")
PLANTED_CAPTIONS = {"zh": 5, "ar": 3}
PLANTED_PHOTOS = 120


def _planted_ranks(hit_prob: dict[str, float], rng: np.random.Generator, base: dict | None = None) -> pd.DataFrame:
    """Monolingual t2i ranks: a hit (rank 1) with the language's probability, else rank 50; `base` (the EN-only
    hits of the same seed) keeps queries paired: an arm's hit is EN-only's hit OR an extra hit."""
    rows = []
    for lang in PLANTED_LANGS:
        for p in range(PLANTED_PHOTOS):
            for j in range(PLANTED_CAPTIONS.get(lang, 1)):
                qid = f"{p}.jpg#{j}" if lang == "en" else f"{lang}:{p}.jpg#{j}"
                hit = rng.random() < hit_prob[lang]
                if base is not None:
                    hit = base[qid] or (rng.random() < hit_prob[lang])
                rows.append({"setting": "monolingual", "query_lang": lang, "doc_lang": "img", "direction": "t2i",
                             "cs_mode": "", "cs_p": np.nan, "cs_langs": "", "query_id": qid,
                             "rank": 1 if hit else 50, "image_id": f"{p}.jpg", "caption_lang": lang,
                             "caption_index": j})
    return pd.DataFrame(rows)


def _write_planted(store: ResultsStore, model: str, arm: str, seed: int, ranks: pd.DataFrame, run_set: str) -> None:
    params = {"model": model, "dataset": "flickr8k-multi30k", "split": "test", "seed": seed, "train_arm": arm,
              "langs": list(PLANTED_LANGS), "settings": ["monolingual"]}
    if run_set:
        params["run_set"] = run_set
    # multilingual gallery language shares: English takes 40 % of top-1 hits, 10 % each for the other six
    shares = [dict(model=model, dataset="flickr8k-multi30k", setting="multilingual", query_lang="img", doc_lang=lang,
                   direction="i2t", metric="lang_share", k=1, value=40.0 if lang == "en" else 10.0, n_queries=100)
              for lang in PLANTED_LANGS]
    # code-switched English queries (ML into all five at p = 0.5): the English rows, every other one a miss
    cs = ranks[(ranks["setting"] == "monolingual") & (ranks["query_lang"] == "en")].copy()
    cs = cs.assign(setting="cs-queries", cs_mode="ml", cs_langs="de,fr,pt,zh,ar", cs_p=0.5)
    cs.loc[cs.index[::2], "rank"] = 50
    store.write_run(make_rows(shares), build_manifest(params), pd.concat([ranks, cs], ignore_index=True))


def build_planted_design_store(tmp_path) -> ResultsStore:
    """Experiment-2 runs (e5; EN-only, blcs-zh, blcs-de, ML-CS all; 3 seeds) with planted effects: blcs-zh adds hits
    in zh/ar only, blcs-de in de/fr/pt only, ML-CS everywhere but English, translate-test +30 outside English."""
    store = ResultsStore(tmp_path)
    rng = np.random.default_rng(0)
    en_prob = {lang: (0.6 if lang == "en" else 0.25) for lang in PLANTED_LANGS}
    extra = {  # extra hits an arm adds on top of EN-only, per language
        "blcs-zh": {lang: (0.35 if lang in ("zh", "ar") else 0.0) for lang in PLANTED_LANGS},
        "blcs-de": {lang: (0.35 if lang in ("de", "fr", "pt") else 0.0) for lang in PLANTED_LANGS},
        "mlcs-de-fr-pt-zh-ar": {lang: (0.2 if lang != "en" else 0.0) for lang in PLANTED_LANGS},
    }
    for seed in range(3):
        en = _planted_ranks(en_prob, rng)
        base = dict(zip(en["query_id"], en["rank"] == 1))
        # translate-test rows of EN-only: the X captions translated, here a planted +30 points outside English
        tt = _planted_ranks({lang: 0.3 for lang in PLANTED_LANGS}, rng, base)
        tt = tt[tt["query_lang"] != "en"].assign(setting="translate-test")
        _write_planted(store, f"csr-mini-m:en/s{seed}", "en", seed, pd.concat([en, tt], ignore_index=True), "experiment-2")
        for arm, prob in extra.items():
            _write_planted(store, f"csr-mini-m:{arm}/s{seed}", arm, seed, _planted_ranks(prob, rng, base), "experiment-2")
    # a run outside the run set (an earlier experiment's model name) must not be read
    _write_planted(store, "csr-mini-m:blcs-zh/s0", "blcs-zh", 0, _planted_ranks({lang: 0.0 for lang in PLANTED_LANGS}, rng), "")
    return store


