"""transformers CLIP and BLIP (image-text retrieval, contrastive/ITC head) behind the `Encoder` protocol.

CLIP: `get_image_features` / `get_text_features` (projected pooled outputs). BLIP: the embeddings
`BlipForImageTextRetrieval(use_itm_head=False)` compares — `vision_proj(vision_model(x)[:, 0])` and
`text_proj(text_encoder(ids)[:, 0])` (text-only pass, no cross-attention), L2-normalised — i.e. BLIP's ITC space.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from csr_core.encoders.base import Encoder, ImageItem, ProgressCallback
from csr_core.encoders.common import (
    check_texts,
    combine_fingerprint,
    PreparedImageBatches,
    default_image_workers,
    load_image,
    module_digest,
    pick_device,
    run_batches,
    to_numpy,
    tokenizer_probe_ids,
)
from csr_core.errors import ModelError

# Config keys that describe the software, not the model; left out of the fingerprint so upgrades keep caches.
_VOLATILE_KEYS = {"transformers_version", "_name_or_path", "_commit_hash", "processor_class", "_attn_implementation"}


def _stable_json(d: Any) -> str:
    """JSON of a config/processor dict without volatile keys, recursively, with sorted keys."""

    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items() if k not in _VOLATILE_KEYS}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        return x

    return json.dumps(clean(d), sort_keys=True, default=str)


def _pooled(out: Any):
    """transformers 4.x returns a tensor from get_*_features, 5.x a model output whose pooler_output is projected."""
    return out if hasattr(out, "shape") else out.pooler_output


class _HFEncoder(PreparedImageBatches, Encoder):
    """Shared batching, threaded image preprocessing, tokenisation and fingerprinting for transformers models."""

    backend = "hf"

    def __init__(
        self,
        model: Any,
        image_processor: Any,
        tokenizer: Any,
        *,
        name: str,
        source: str,
        device: str = "cpu",
        image_workers: int | None = None,
        max_pixels: int | None = None,
        max_length: int | None = None,
    ) -> None:
        self.name = name
        self.source = source
        self.device = device
        self.model = model.eval()
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.image_workers = image_workers or default_image_workers()
        self.max_pixels = max_pixels
        self.max_length = int(max_length or self._default_max_length())
        self._dtype = next(self.model.parameters()).dtype
        self._fingerprint: str | None = None

    # -- to specialise
    def _default_max_length(self) -> int:
        raise NotImplementedError

    def _image_features(self, pixel_values):
        raise NotImplementedError

    def _text_features(self, input_ids, attention_mask):
        raise NotImplementedError

    @property
    def dim(self) -> int:
        raise NotImplementedError

    # -- shared
    @property
    def fingerprint(self) -> str:
        """sha256 of backend + config + all weights + image processor + tokenizer behaviour and max length."""
        if self._fingerprint is None:
            self._fingerprint = combine_fingerprint(
                self.backend,
                type(self.model).__name__,
                _stable_json(self.model.config.to_dict()),
                module_digest(self.model),
                _stable_json(self.image_processor.to_dict()),
                type(self.tokenizer).__name__,
                str(self.max_length),
                tokenizer_probe_ids(lambda t: self._tokenize(t)["input_ids"]),
            )
        return self._fingerprint

    def _tokenize(self, texts: list[str]):
        return self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )

    def _prepare_image(self, item: ImageItem):
        img = load_image(item, self.max_pixels)
        return self.image_processor(images=[img], return_tensors="pt")["pixel_values"][0]

    def _encode_image_batch(self, tensors: list) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.stack(tensors).to(self.device, dtype=self._dtype)
            return to_numpy(self._image_features(x))

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            enc = self._tokenize(texts)
            feats = self._text_features(enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device))
            return to_numpy(feats)

    def encode_texts(
        self,
        texts: Sequence[str],
        lang: str | None = None,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """`lang` is accepted for the protocol; these text towers take raw text."""
        return run_batches(check_texts(texts), batch_size, self._encode_text_batch, self.dim, progress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={self.device!r}, dim={self.dim})"


class HFClipEncoder(_HFEncoder):
    """transformers `CLIPModel`: projected pooled image/text features."""

    backend = "hf"

    def _default_max_length(self) -> int:
        return int(self.model.config.text_config.max_position_embeddings)

    @property
    def dim(self) -> int:
        return int(self.model.config.projection_dim)

    def _image_features(self, pixel_values):
        return _pooled(self.model.get_image_features(pixel_values=pixel_values))

    def _text_features(self, input_ids, attention_mask):
        return _pooled(self.model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))


class BlipEncoder(_HFEncoder):
    """transformers `BlipForImageTextRetrieval`, contrastive (ITC) embeddings as in `use_itm_head=False`."""

    backend = "blip"

    def _default_max_length(self) -> int:
        tok_max = getattr(self.tokenizer, "model_max_length", None) or 10**9
        return int(min(tok_max, self.model.config.text_config.max_position_embeddings))

    @property
    def dim(self) -> int:
        return int(self.model.config.image_text_hidden_size)

    def _image_features(self, pixel_values):
        hidden = self.model.vision_model(pixel_values=pixel_values).last_hidden_state
        return self.model.vision_proj(hidden[:, 0, :])

    def _text_features(self, input_ids, attention_mask):
        hidden = self.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.model.text_proj(hidden[:, 0, :])


def _dtype_kwargs() -> dict:
    """Load in float32 whatever the checkpoint stores (transformers 5 says `dtype`, 4.x `torch_dtype`)."""
    import torch
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}


def _load_parts(kind: str, source: str, local_files_only: bool):
    """Config check, then model, tokenizer and image processor from one repo id or folder."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    expected = {"hf": "clip", "blip": "blip"}[kind]
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local_files_only)
    except Exception as e:
        raise ModelError(f"{kind}:{source}: no readable transformers config ({e})") from e
    if config.model_type != expected:
        other = {"clip": "hf", "blip": "blip"}.get(config.model_type)
        hint = f"; load it as {other}:{source}" if other else ""
        raise ModelError(f"{kind}:{source} holds a {config.model_type!r} model, not {expected!r}{hint}")
    import transformers

    model_cls: Any = transformers.CLIPModel if kind == "hf" else transformers.BlipForImageTextRetrieval
    try:
        model = model_cls.from_pretrained(
            source, local_files_only=local_files_only, weights_only=True, **_dtype_kwargs()
        )
    except Exception as e:
        raise ModelError(f"{kind}:{source}: weights could not be loaded safely ({e})") from e
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        image_processor = AutoImageProcessor.from_pretrained(source, local_files_only=local_files_only)
    except Exception as e:
        raise ModelError(f"{kind}:{source}: tokenizer or image processor missing or unreadable ({e})") from e
    return model, tokenizer, image_processor


def load_hf(
    kind: str,
    source: str,
    *,
    name: str | None = None,
    device: str | None = None,
    local_files_only: bool = False,
    image_workers: int | None = None,
    max_pixels: int | None = None,
    max_length: int | None = None,
) -> _HFEncoder:
    """`kind` "hf" → HFClipEncoder, "blip" → BlipEncoder; `source` is a hub repo id or a local folder."""
    if kind not in ("hf", "blip"):
        raise ModelError(f"unknown transformers backend {kind!r}; use 'hf' or 'blip'")
    is_dir = Path(source).expanduser().is_dir()
    src = str(Path(source).expanduser().resolve()) if is_dir else source
    dev = pick_device(device)
    model, tokenizer, image_processor = _load_parts(kind, src, local_files_only or is_dir)
    model = model.to(dev)
    cls = HFClipEncoder if kind == "hf" else BlipEncoder
    return cls(
        model,
        image_processor,
        tokenizer,
        name=name or f"{kind}:{source}",
        source=src,
        device=dev,
        image_workers=image_workers,
        max_pixels=max_pixels,
        max_length=max_length,
    )
