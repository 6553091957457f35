"""Helpers shared by test modules (importable as `testsupport`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


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
                                    max_images=10, n_resamples=50), store=store)
    assert set(run.rows["query_lang"]) >= {"en", "de"}
    with pytest.raises(DataError, match="training"):
        run_evaluation(EvalConfig(model=model_name, dataset="flickr8k-multi30k", split="train", langs=("en",),
                                  max_images=40, n_resamples=50), store=store)
