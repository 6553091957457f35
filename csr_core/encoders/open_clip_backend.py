"""open_clip models behind the `Encoder` protocol: pretrained tags, hf-hub repos, local checkpoints and local configs.

The vectors are `model.encode_image/encode_text` + L2 normalisation, so our numbers match open_clip's own
evaluation; we only add batching, threaded image decoding, progress/cancel and a weights fingerprint.

Speed: a CLIP text tower runs over all `context_length` (77) token positions, although a caption is ~15 tokens. For
towers where it is provably the same computation (causal attention mask + EOT pooling, see `text_truncation_safe`)
we run each batch only up to its longest real token sequence (and sort a call's texts by length first): the EOT
feature of a causal transformer does not depend on later positions, so the vectors equal the full pass up to float
rounding (checked numerically once per encoder; max |diff| ~1e-7 in fp32). 3-5x fewer text FLOPs on Flickr8k.
Turn it off with `text_truncation=False` or the environment variable CSR_TEXT_TRUNCATION=0.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from csr_core import _io
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
    safe_load_state_dict,
    to_numpy,
    tokenizer_probe_ids,
)
from csr_core.errors import ModelError

# Config files we registered with open_clip in this process, and the architecture name each one gave.
_REQUIRED_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
TRUNCATION_ENV = "CSR_TEXT_TRUNCATION"
# Probe captions of very different lengths for the one-off truncated-vs-full check.
_TRUNCATION_PROBE = ["a", "a dog", "A black dog runs along the sandy beach while two children watch from the dunes ."]
log = logging.getLogger(__name__)


def truncation_enabled_by_env() -> bool:
    """CSR_TEXT_TRUNCATION=0/false/no/off turns text truncation off for every open_clip encoder in the process."""
    return os.environ.get(TRUNCATION_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def text_truncation_safe(model: Any) -> tuple[bool, str]:
    """Can `model.encode_text` run on a prefix of the token positions without changing the pooled feature?

    True only for open_clip's own `CLIP` text path (not CustomTextCLIP / HF towers / CoCa) whose attention mask is
    strictly causal and whose pooling picks one token (argmax = EOT, or the eos id) — then every position up to the
    pooled one sees exactly the same inputs whatever follows it. Returns (ok, reason).
    """
    import torch
    from open_clip.model import CLIP

    if type(model).encode_text is not CLIP.encode_text:
        return False, f"{type(model).__name__}.encode_text is not open_clip's CLIP.encode_text"
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask", "text_pool_type")
    missing = [a for a in needed if getattr(model, a, None) is None]
    if missing:
        return False, f"text tower lacks {missing}"
    if model.text_pool_type not in ("argmax", "eos"):
        return False, f"text pooling {model.text_pool_type!r} reads more than one position"
    if model.text_pool_type == "eos" and getattr(model, "text_eos_id", None) is None:
        return False, "eos pooling without an eos id"
    mask = model.attn_mask
    n = model.positional_embedding.shape[0]
    if not isinstance(mask, torch.Tensor) or mask.shape != (n, n):
        return False, "attention mask is not a (context, context) tensor"
    causal = torch.full((n, n), float("-inf"), device=mask.device).triu_(1)
    if not torch.equal(mask.float(), causal):
        return False, "attention mask is not causal"
    if getattr(model.transformer, "grad_checkpointing", False):
        return False, "gradient checkpointing is on"
    return True, "causal mask + single-token pooling"


def _pool_index(model: Any, tokens) -> Any:
    """Row-wise position that open_clip's text_global_pool reads (argmax id, or first eos id)."""
    if model.text_pool_type == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == model.text_eos_id).int().argmax(dim=-1)


def encode_text_truncated(model: Any, tokens) -> Any:
    """open_clip `CLIP.encode_text(tokens, normalize=True)` computed over positions [0, L) only, L = last pooled + 1.

    Mirrors CLIP.encode_text step by step with the positional embedding and causal mask sliced to L; valid only
    where `text_truncation_safe(model)` holds. The pooled position of every row lies inside the prefix and
    torch.argmax returns the first maximum, so the same position is pooled as in the full pass.
    """
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    length = int(_pool_index(model, tokens).max()) + 1
    text = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(text).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = text_global_pool(x, text, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        proj = model.text_projection
        x = proj(x) if isinstance(proj, torch.nn.Linear) else x @ proj
    return F.normalize(x, dim=-1)


class OpenClipEncoder(PreparedImageBatches, Encoder):
    """An open_clip model + its eval transform + its tokenizer, in inference mode on one device."""

    def __init__(
        self,
        model: Any,
        preprocess: Any,
        tokenizer: Any,
        *,
        name: str,
        arch: str,
        pretrained: str = "",
        device: str = "cpu",
        precision: str = "fp32",
        image_workers: int | None = None,
        max_pixels: int | None = None,
        text_truncation: bool | None = None,
    ) -> None:
        import torch

        self.name = name
        self.device = device
        self.arch = arch
        self.pretrained = pretrained
        self.precision = precision
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.image_workers = image_workers or default_image_workers()
        self.max_pixels = max_pixels
        self._image_dtype = next(self.model.visual.parameters()).dtype
        self._fingerprint: str | None = None
        want = truncation_enabled_by_env() if text_truncation is None else bool(text_truncation)
        safe, why = text_truncation_safe(self.model) if want else (False, "turned off")
        # None = structurally safe but not yet checked numerically (done lazily on the first text batch)
        self._truncate: bool | None = None if safe else False
        self.text_truncation_reason = why
        dim = getattr(self.model.visual, "output_dim", None)
        if not isinstance(dim, int):
            with torch.inference_mode():  # towers without an output_dim attribute (timm/hf): measure it once
                dim = int(self.model.encode_text(self.tokenizer(["a"]).to(self.device)).shape[-1])
        self._dim = int(dim)

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def fingerprint(self) -> str:
        """sha256 of arch + tag + all weights (see common.weights_digest) + eval transform + tokenizer behaviour.

        Computed on first use (≈0.5 s for a ViT-B-32 on CPU) and cached on the instance.
        """
        if self._fingerprint is None:
            pp_cfg = getattr(self.model.visual, "preprocess_cfg", {})
            self._fingerprint = combine_fingerprint(
                "open_clip",
                self.arch,
                self.pretrained,
                self.precision,
                module_digest(self.model),
                repr(self.preprocess),
                json.dumps(pp_cfg, sort_keys=True, default=str),
                type(self.tokenizer).__name__,
                str(getattr(self.tokenizer, "context_length", "")),
                tokenizer_probe_ids(self.tokenizer),
            )
        return self._fingerprint

    def _prepare_image(self, item: ImageItem):
        return self.preprocess(load_image(item, self.max_pixels))

    def _encode_image_batch(self, tensors: list) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.stack(tensors).to(self.device, dtype=self._image_dtype)
            return to_numpy(self.model.encode_image(x, normalize=True))

    @property
    def text_truncation(self) -> bool:
        """Whether text batches run truncated to their longest caption (after the one-off numeric check)."""
        if self._truncate is None:
            self._check_truncation()
        return bool(self._truncate)

    def _check_truncation(self) -> None:
        """Compare truncated and full passes once on probe captions; any mismatch turns truncation off (logged)."""
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(_TRUNCATION_PROBE).to(self.device)
            full = self.model.encode_text(tokens, normalize=True).float()
            short = encode_text_truncated(self.model, tokens).float()
        tol = 1e-5 if full.dtype == short.dtype and self.precision in ("fp32", "float32") else 2e-2
        err = float((full - short).abs().max())
        self._truncate = err <= tol
        self.text_truncation_reason = f"probe max |full - truncated| = {err:.2e} (tolerance {tol:g})"
        if not self._truncate:
            log.warning("%s: text truncation turned off: %s", self.name, self.text_truncation_reason)

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            if not self.text_truncation:
                return to_numpy(self.model.encode_text(tokens, normalize=True))
            return to_numpy(encode_text_truncated(self.model, tokens))

    def encode_texts(
        self,
        texts: Sequence[str],
        lang: str | None = None,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """`lang` is accepted for the protocol; open_clip text towers take raw text in any language.

        With text truncation on, the texts are encoded in order of length (results come back in the caller's
        order), so each batch is only as long as its longest caption: ~5x fewer text FLOPs than 77 positions on
        Flickr8k captions when a call holds many texts (sorting inside a single 64-caption batch gains little).
        """
        texts = check_texts(texts)
        if len(texts) <= batch_size or not self.text_truncation:
            return run_batches(texts, batch_size, self._encode_text_batch, self._dim, progress)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # characters: a cheap proxy for tokens
        vectors = run_batches([texts[i] for i in order], batch_size, self._encode_text_batch, self._dim, progress)
        out = np.empty_like(vectors)
        out[order] = vectors
        return out

    def __repr__(self) -> str:
        return f"OpenClipEncoder(name={self.name!r}, device={self.device!r}, dim={self._dim})"


def read_model_config(path: str | Path) -> dict:
    """Read and check an open_clip model-config JSON; open_clip itself would silently ignore a malformed one."""
    p = Path(path).expanduser()
    cfg = _io.read_json_file(p, "open_clip model config", ModelError)
    missing = [k for k in _REQUIRED_CONFIG_KEYS if k not in cfg]
    if missing:
        hint = ""
        if "model_cfg" in cfg:
            hint = " (a folder holding open_clip_config.json loads as open_clip:local-dir:/folder)"
        raise ModelError(
            f"open_clip model config {p}: missing top-level key(s) {missing}; needs {list(_REQUIRED_CONFIG_KEYS)}{hint}"
        )
    return cfg


def register_model_config(path: str | Path) -> str:
    """Register a local model-config JSON with open_clip (add_model_config); returns its architecture name (file stem).

    Refuses a file whose stem already names a *different* architecture, so a user's file can never silently replace a
    built-in such as ViT-B-32 for the rest of the process.
    """
    import open_clip

    p = Path(path).expanduser().resolve()
    cfg = read_model_config(p)
    arch = p.stem
    if arch in open_clip.list_models():
        if open_clip.get_model_config(arch) != cfg:
            raise ModelError(
                f"open_clip model config {p}: the name {arch!r} is already registered with a different "
                "configuration; rename the file (its stem becomes the architecture name)"
            )
    else:
        open_clip.add_model_config(p)
        if arch not in open_clip.list_models():
            raise ModelError(f"open_clip did not accept model config {p} (architecture {arch!r} missing after adding)")
    return arch


def hf_text_repos(model_cfg: dict | None) -> list[str]:
    """Hugging Face repos an architecture's text tower needs (config + tokenizer) even without pretrained weights."""
    if not model_cfg:
        return []
    text_cfg = model_cfg.get("text_cfg", {})
    repos = [text_cfg.get("hf_model_name"), text_cfg.get("hf_tokenizer_name")]
    return list(dict.fromkeys(r for r in repos if r))


def _check_local_dir_weights(folder: Path) -> None:
    """A local-dir must hold weights (open_clip would fall back to random ones) and no unsafe pickle."""
    safes = list(folder.glob("*.safetensors"))
    pickles = [p for ext in ("*.bin", "*.pth") for p in folder.glob(ext)]
    if not safes and not pickles:
        raise ModelError(f"{folder}: no weights (*.safetensors, *.bin, *.pth) beside open_clip_config.json")
    if not safes:
        for p in pickles:
            safe_load_state_dict(p)  # raises ModelError("refused ...") for pickles needing arbitrary objects


def _precheck_checkpoint(checkpoint: str | Path) -> None:
    """Refuse what open_clip must not load, without holding a second copy of the weights in memory.

    A .safetensors file cannot run code, so reading its header (tensor names/shapes) is enough to give a clear error
    for a missing or broken file — loading it fully here as well would add the whole model (~600 MB for a ViT-B-32)
    to peak memory. Pickle-based files go through `safe_load_state_dict`, which refuses arbitrary objects.
    """
    p = Path(checkpoint).expanduser()
    if p.suffix.lower() != ".safetensors":
        safe_load_state_dict(p)
        return
    if not p.is_file():
        raise ModelError(f"checkpoint file not found: {p}")
    from safetensors import safe_open

    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            keys = list(f.keys())
    except Exception as e:  # safetensors raises its own error types
        raise ModelError(f"checkpoint {p} is not a readable safetensors file: {e}") from e
    if not keys:
        raise ModelError(f"checkpoint {p} does not hold a state dict of tensors (it is empty)")


_ST_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
              "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}
_INPLACE_GROUP_BYTES = 64 * 2**20


def load_safetensors_inplace(model: Any, checkpoint: str | Path) -> bool:
    """Copy a .safetensors file into `model`'s tensors group by group; False (nothing touched) unless it fits exactly.

    Why: open_clip.load_checkpoint reads the whole file into a second state dict, so peak memory holds the model
    twice (+600 MB for a ViT-B-32). When the file's names, shapes and dtypes equal the model's own state dict
    (open_clip's native layout: none of load_checkpoint's conversions would apply), tensors are read through
    `safetensors.safe_open` about 64 MB at a time and copied in place; the file is re-opened between groups so its
    mapped pages are released: peak extra memory is one group. Anything else — other layouts, missing/extra keys,
    other dtypes — returns False for open_clip's own loader.
    """
    import torch
    from safetensors import safe_open

    p = Path(checkpoint).expanduser()
    if p.suffix.lower() != ".safetensors":
        return False
    try:
        _, layout = _io.safetensors_layout(p)
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(f"checkpoint {p} is not a readable safetensors file (truncated download?): {e}") from e
    target = model.state_dict()
    if set(layout) != set(target):
        return False
    for name, (shape, dtype) in layout.items():
        t = target[name]
        if getattr(torch, _ST_DTYPES.get(dtype, ""), None) != t.dtype or list(shape) != list(t.shape) \
                or t.device.type != "cpu":
            return False
    groups: list[list[str]] = [[]]
    size = 0
    for name in layout:
        if size > _INPLACE_GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += target[name].numel() * target[name].element_size()
    with torch.no_grad():
        for group in groups:
            with safe_open(str(p), framework="pt", device="cpu") as fh:
                for name in group:
                    target[name].copy_(fh.get_tensor(name))
    return True


def load_open_clip(
    arch: str | None = None,
    *,
    pretrained: str | None = None,
    hf_hub: str | None = None,
    local_dir: str | None = None,
    checkpoint: str | None = None,
    name: str | None = None,
    device: str | None = None,
    precision: str = "fp32",
    image_workers: int | None = None,
    max_pixels: int | None = None,
    cache_dir: str | None = None,
    text_truncation: bool | None = None,
) -> OpenClipEncoder:
    """Build an OpenClipEncoder from one source: `arch` (+ `pretrained` tag or `checkpoint`), `hf_hub` or `local_dir`.

    `arch` alone gives random weights (timing runs). Checkpoints load through `safe_load_state_dict` first, so a pickle
    needing arbitrary objects is refused before open_clip sees it.
    """
    import open_clip

    dev = pick_device(device)
    if hf_hub:
        # open_clip only *warns* when an hf-hub repo's weights cannot be fetched and returns a random model; fetch
        # (or find in the cache) first so a missing file is an error, not silently random vectors.
        from open_clip.pretrained import download_pretrained_from_hf

        try:
            download_pretrained_from_hf(hf_hub, cache_dir=cache_dir)
        except Exception as e:
            raise ModelError(f"open_clip:hf-hub:{hf_hub}: weights could not be found or downloaded ({e})") from e
        model_name, tag, label = f"hf-hub:{hf_hub}", None, f"hf-hub:{hf_hub}"
    elif local_dir:
        _check_local_dir_weights(Path(local_dir).expanduser())
        model_name, tag, label = f"local-dir:{local_dir}", None, f"local-dir:{Path(local_dir).name}"
    elif arch:
        if arch not in open_clip.list_models():
            import difflib

            close = difflib.get_close_matches(arch, open_clip.list_models(), n=5)
            raise ModelError(f"unknown open_clip architecture {arch!r}" + (f"; did you mean {close}?" if close else ""))
        model_name, tag, label = arch, pretrained, arch
    else:
        raise ModelError("load_open_clip needs an architecture, an hf-hub repo or a local-dir")

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name,
            pretrained=tag,
            precision=precision,
            device=dev,
            pretrained_image=False,
            pretrained_text=False,  # never fetch HF text weights behind the user's back; full checkpoints replace them
            cache_dir=cache_dir,
            weights_only=True,
        )
    except ModelError:
        raise
    except Exception as e:
        raise ModelError(f"open_clip could not build {model_name!r} (pretrained={tag!r}): {e}") from e

    if checkpoint:
        _precheck_checkpoint(checkpoint)  # refuses unsafe pickles; open_clip then loads it (weights_only=True)
        try:
            if not load_safetensors_inplace(model, checkpoint):  # exact native layout: streamed, no second copy
                open_clip.load_checkpoint(model, str(Path(checkpoint).expanduser()), strict=True, weights_only=True)
        except Exception as e:
            raise ModelError(f"checkpoint {checkpoint} does not fit open_clip architecture {model_name!r}: {e}") from e

    try:
        tokenizer = open_clip.get_tokenizer(model_name, cache_dir=cache_dir)
    except Exception as e:
        raise ModelError(f"open_clip could not build the tokenizer for {model_name!r}: {e}") from e

    return OpenClipEncoder(
        model,
        preprocess,
        tokenizer,
        name=name or (f"open_clip:{label}/{tag}" if tag else f"open_clip:{label}"),
        arch=label,
        pretrained=tag or "",
        device=dev,
        precision=precision,
        image_workers=image_workers,
        max_pixels=max_pixels,
        text_truncation=text_truncation,
    )
