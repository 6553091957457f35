"""open_clip models behind the `Encoder` protocol: pretrained tags, hf-hub repos, local checkpoints and local configs.

The vectors are exactly `model.encode_image/encode_text` + L2 normalisation, so our numbers match open_clip's own
evaluation; we only add batching, threaded image decoding, progress/cancel and a weights fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from csr_core.encoders.base import ImageItem, ProgressCallback
from csr_core.encoders.common import (
    check_texts,
    combine_fingerprint,
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
_REGISTERED_CONFIGS: dict[str, str] = {}
_REQUIRED_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


class OpenClipEncoder:
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

    def _encode_text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = self.tokenizer(texts).to(self.device)
            return to_numpy(self.model.encode_text(tokens, normalize=True))

    def encode_images(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        return run_batches(
            items, batch_size, self._encode_image_batch, self._dim, progress,
            prepare=self._prepare_image, workers=self.image_workers,
        )

    def encode_texts(
        self,
        texts: Sequence[str],
        lang: str | None = None,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """`lang` is accepted for the protocol; open_clip text towers take raw text in any language."""
        return run_batches(check_texts(texts), batch_size, self._encode_text_batch, self._dim, progress)

    def __repr__(self) -> str:
        return f"OpenClipEncoder(name={self.name!r}, device={self.device!r}, dim={self._dim})"


def read_model_config(path: str | Path) -> dict:
    """Read and check an open_clip model-config JSON; open_clip itself would silently ignore a malformed one."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"open_clip model config not found: {p}")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelError(f"open_clip model config {p}, line {e.lineno}: not valid JSON ({e.msg})") from e
    if not isinstance(cfg, dict):
        raise ModelError(f"open_clip model config {p}: expected a JSON object, got {type(cfg).__name__}")
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
    _REGISTERED_CONFIGS[str(p)] = arch
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
        safe_load_state_dict(checkpoint)  # refuses unsafe pickles; open_clip then loads it (weights_only=True)
        try:
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
    )
