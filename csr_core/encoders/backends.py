"""The backend registry: one `Backend` per model family, owning its name grammar, its offline check, its loader, its
options and its self-description. `registry.py` only dispatches through `BACKENDS`; adding a backend is one entry here
(see docs/architecture.md, "add a backend").

Names (see README):
  open_clip:ARCH/TAG                  pretrained tag, e.g. open_clip:ViT-B-32/openai
  open_clip:ARCH                      random weights (timing only), e.g. open_clip:ViT-B-32
  open_clip:ARCH@/path/ckpt.safetensors   local checkpoint (safetensors, or .pt/.pth/.bin tensors only)
  open_clip:hf-hub:org/repo           open_clip repo on the Hugging Face Hub
  open_clip:local-dir:/folder         folder holding open_clip_config.json + weights
  open_clip-config:/path/x.json[@/path/ckpt.safetensors]   local model-config JSON (architecture = file stem)
  hf:org/repo | hf:/local/folder      transformers CLIPModel
  blip:org/repo | blip:/local/folder  transformers BlipForImageTextRetrieval (contrastive embeddings)
  csr-mini | csr-mini-m | csr-mini:ARM   the embedded offline model (csr_core.encoders.csr_mini)
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from csr_core import _io
from csr_core.encoders.base import Encoder
from csr_core.encoders.hub import hub_cache_dir, hub_cached
from csr_core.errors import CSRError, ModelError

_CKPT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_OC_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                    "spiece.model")
Missing = list[tuple[str, str]]  # (what, where) a name needs from the network and lacks locally


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model name. `kind` says where the weights come from:
    open_clip: tag | random | checkpoint | config | hf-hub | local-dir; hf/blip: hub | folder; csr-mini: embedded."""

    raw: str
    backend: str
    kind: str
    arch: str | None = None
    pretrained: str | None = None
    path: str | None = None
    checkpoint: str | None = None
    repo: str | None = None


@dataclass(frozen=True)
class BackendInfo:
    name: str
    runs_offline_here: bool
    reason: str


@dataclass(frozen=True)
class Backend:
    """One model family. `claims(raw)` says whether a name belongs to it; the rest is called only for its names.

    `missing(spec, opts)` lists what would have to be downloaded (no network touched); `load(spec, device, opts,
    offline)` builds the Encoder (`offline`: use local files only); `download_kinds` are the spec kinds that reach
    the network even when nothing is known to be missing (their loader errors are reported as offline errors)."""

    name: str
    grammar: str
    claims: Callable[[str], bool]
    parse: Callable[[str], ModelSpec]
    missing: Callable[[ModelSpec, dict], Missing]
    load: Callable[[ModelSpec, str | None, dict, bool], Encoder]
    options: Callable[[], frozenset[str]]
    describe: Callable[[], BackendInfo]
    offline_models: Callable[[], list[str]]
    download_kinds: frozenset[str] = field(default_factory=frozenset)

    def check_options(self, spec: ModelSpec, opts: dict[str, Any]) -> dict[str, Any]:
        allowed = self.options()
        unknown = sorted(set(opts) - allowed)
        if unknown:
            raise ModelError(f"{spec.raw}: unknown option(s) {unknown} for the {self.name} backend; "
                             f"allowed: {sorted(allowed)}")
        return opts


def _prefixed(*prefixes: str) -> Callable[[str], bool]:
    return lambda raw: raw.split(":", 1)[0] in prefixes and ":" in raw


def _rest(raw: str) -> tuple[str, str]:
    prefix, rest = raw.split(":", 1)
    if not rest:
        raise ModelError(f"model name {raw!r}: nothing after {prefix + ':'!r}")
    return prefix, rest


def _looks_like_path(s: str) -> bool:
    return s.startswith(("/", "./", "../", "~")) or (len(s) > 2 and s[1] == ":" and s[2] in "\\/")


def _split_checkpoint(s: str) -> tuple[str, str | None]:
    """'X@/path/ckpt.safetensors' → ('X', '/path/ckpt.safetensors'); only when the right side is a checkpoint file."""
    if "@" in s:
        left, right = s.rsplit("@", 1)
        if right.lower().endswith(_CKPT_SUFFIXES) or _looks_like_path(right):
            if not left or not right:
                raise ModelError(f"model name {s!r}: both an architecture and a checkpoint path are needed around '@'")
            return left, right
    return s, None


# ---------------------------------------------------------------- open_clip


def _open_clip_parse(raw: str) -> ModelSpec:
    prefix, rest = _rest(raw)
    if prefix == "open_clip-config":
        cfg, ckpt = _split_checkpoint(rest)
        return ModelSpec(raw, "open_clip", "config", path=cfg, checkpoint=ckpt)
    if rest.startswith("hf-hub:"):
        repo = rest[len("hf-hub:"):]
        if repo.count("/") != 1:
            raise ModelError(f"model name {raw!r}: hf-hub needs 'org/repo', got {repo!r}")
        return ModelSpec(raw, "open_clip", "hf-hub", repo=repo)
    if rest.startswith("local-dir:"):
        return ModelSpec(raw, "open_clip", "local-dir", path=rest[len("local-dir:"):])
    body, ckpt = _split_checkpoint(rest)
    if ckpt:
        return ModelSpec(raw, "open_clip", "checkpoint", arch=body, checkpoint=ckpt)
    if _looks_like_path(body) and body.endswith(".json"):
        return ModelSpec(raw, "open_clip", "config", path=body)
    if "/" in body:
        arch, tag = body.split("/", 1)
        if not arch or not tag or "/" in tag:
            raise ModelError(f"model name {raw!r}: expected open_clip:ARCH/TAG, e.g. open_clip:ViT-B-32/openai")
        return ModelSpec(raw, "open_clip", "tag", arch=arch, pretrained=tag)
    return ModelSpec(raw, "open_clip", "random", arch=body)


def _open_clip_text_needs(cfg: dict | None) -> Missing:
    from csr_core.encoders.open_clip_backend import hf_text_repos

    return [("the text tower's config and tokenizer", f"hf-hub:{repo}") for repo in hf_text_repos(cfg)
            if not hub_cached(repo, ("config.json",) + _TOKENIZER_FILES)]


def _json_model_cfg(path: str | Path | None) -> dict | None:
    try:
        return _io.read_json_file(path, "model config").get("model_cfg") if path else None
    except CSRError:
        return None  # the loader reports a broken config with its file name


def _open_clip_missing(spec: ModelSpec, opts: dict) -> Missing:
    """What this open_clip spec needs from the network and lacks locally; `opts["cache_dir"]` is open_clip's own
    override (the hub cache for hub files, else ~/.cache/clip for URL downloads)."""
    import open_clip

    from csr_core.encoders.open_clip_backend import read_model_config

    cache_dir = opts.get("cache_dir")
    if spec.kind in ("tag", "random", "checkpoint"):
        cfg = open_clip.get_model_config(spec.arch) if spec.arch in open_clip.list_models() else None
        if cfg is None:
            return []  # unknown arch: the loader raises a clear error with suggestions
        missing = _open_clip_text_needs(cfg)
        if spec.kind == "tag":
            missing += _open_clip_weights_needs(spec, cache_dir)
        return missing
    if spec.kind == "hf-hub":
        assert spec.repo is not None
        if not hub_cached(spec.repo, ("open_clip_config.json",), cache_dir):
            return [("open_clip_config.json and weights", f"hf-hub:{spec.repo}")]
        from huggingface_hub import try_to_load_from_cache

        cache = str(Path(cache_dir).expanduser()) if cache_dir else str(hub_cache_dir())
        missing = [] if hub_cached(spec.repo, _OC_WEIGHTS, cache_dir) else [("weights", f"hf-hub:{spec.repo}")]
        cfg_path = try_to_load_from_cache(spec.repo, "open_clip_config.json", cache_dir=cache)
        return missing + _open_clip_text_needs(_json_model_cfg(cfg_path if isinstance(cfg_path, str) else None))
    if spec.kind == "config":
        assert spec.path is not None
        return _open_clip_text_needs(read_model_config(spec.path))
    if spec.kind == "local-dir":
        assert spec.path is not None
        p = Path(spec.path).expanduser() / "open_clip_config.json"
        return _open_clip_text_needs(_json_model_cfg(p) if p.is_file() else None)
    return []


def _open_clip_weights_needs(spec: ModelSpec, cache_dir: str | None) -> Missing:
    import open_clip

    pcfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    if not pcfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.arch)
        raise ModelError(f"{spec.raw}: {spec.pretrained!r} is not a pretrained tag of {spec.arch}; "
                         f"known tags: {tags or 'none'}")
    if pcfg.get("file"):
        return []
    if pcfg.get("hf_hub"):
        repo, fname = os.path.split(pcfg["hf_hub"])  # 'org/repo/' or 'org/repo/file.bin', as open_clip
        files = (fname,) if fname else _OC_WEIGHTS
        if fname.endswith((".bin", ".pth")):
            files = (fname[:-4] + ".safetensors", fname)
        return [] if hub_cached(repo, files, cache_dir) else [("pretrained weights", f"hf-hub:{repo}")]
    if pcfg.get("url"):
        target = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(pcfg["url"])
        return [] if target.is_file() else [("pretrained weights", pcfg["url"])]
    return []


def _open_clip_load(spec: ModelSpec, device: str | None, opts: dict, offline: bool) -> Encoder:
    encoder = _open_clip_build(spec, device, opts)
    if spec.checkpoint:
        from csr_core.training.open_clip_ft import read_manifest

        manifest = read_manifest(spec.checkpoint)
        if manifest is not None:  # fine-tuned here: the leakage guard refuses its training photos
            encoder.training_image_ids = list(manifest.get("training_image_ids", ()))
    return encoder


def _open_clip_build(spec: ModelSpec, device: str | None, opts: dict) -> Encoder:
    from csr_core.encoders.open_clip_backend import load_open_clip, register_model_config

    common = dict(name=spec.raw, device=device, **opts)
    if spec.kind == "config":
        assert spec.path is not None
        arch = register_model_config(spec.path)
        return load_open_clip(arch, checkpoint=spec.checkpoint, **common)
    if spec.kind == "hf-hub":
        return load_open_clip(hf_hub=spec.repo, **common)
    if spec.kind == "local-dir":
        assert spec.path is not None
        folder = Path(spec.path).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ModelError(f"{spec.raw}: {folder} has no open_clip_config.json")
        return load_open_clip(local_dir=str(folder), **common)
    if spec.kind == "checkpoint":
        return load_open_clip(spec.arch, checkpoint=spec.checkpoint, **common)
    return load_open_clip(spec.arch, pretrained=spec.pretrained, **common)  # tag or random


def cached_open_clip_tags() -> list[str]:
    """open_clip pretrained tags whose weights and text-tower files are all in the local caches."""
    if not hub_cache_dir().is_dir() and not Path("~/.cache/clip").expanduser().is_dir():
        return []
    import open_clip

    out = []
    for arch, tag in open_clip.list_pretrained():
        spec = ModelSpec(f"open_clip:{arch}/{tag}", "open_clip", "tag", arch=arch, pretrained=tag)
        try:
            if not _open_clip_missing(spec, {}):
                out.append(spec.raw)
        except CSRError:
            continue
    return out


def _open_clip_describe() -> BackendInfo:
    try:
        import open_clip
    except ImportError as e:
        return BackendInfo("open_clip", False, f"open_clip_torch is not installed ({e})")
    n = len(cached_open_clip_tags())
    return BackendInfo("open_clip", True, f"open_clip {open_clip.__version__}: local configs, local checkpoints and "
                       f"random init; {n} cached pretrained tag(s)")


def _installed_or_empty(lister: Callable[[], list[str]]) -> Callable[[], list[str]]:
    def listed() -> list[str]:
        try:
            return lister()
        except ImportError:
            return []

    return listed


# ---------------------------------------------------------------- transformers (hf CLIPModel, blip retrieval)

_HF_CLASSES = {"hf": ("clip", "CLIPModel"), "blip": ("blip", "BlipForImageTextRetrieval")}


def _hf_parse(raw: str) -> ModelSpec:
    prefix, rest = _rest(raw)
    if _looks_like_path(rest) or Path(rest).expanduser().is_dir():
        return ModelSpec(raw, prefix, "folder", path=rest)
    if rest.count("/") != 1 or rest.startswith("/") or rest.endswith("/"):
        raise ModelError(f"model name {raw!r}: expected {prefix}:org/repo or {prefix}:/path/to/folder")
    return ModelSpec(raw, prefix, "hub", repo=rest)


def _hf_missing(spec: ModelSpec, opts: dict) -> Missing:
    if spec.kind == "folder":
        return []
    assert spec.repo is not None
    if hub_cached(spec.repo, ("config.json",)) and hub_cached(spec.repo, _HF_WEIGHTS):
        return []
    return [("config and weights", f"hf-hub:{spec.repo}")]


def _hf_load(spec: ModelSpec, device: str | None, opts: dict, offline: bool) -> Encoder:
    from csr_core.encoders.hf_backend import load_hf

    src = spec.path if spec.kind == "folder" else spec.repo
    assert src is not None
    if spec.kind == "folder" and not Path(src).expanduser().is_dir():
        raise ModelError(f"{spec.raw}: folder not found: {Path(src).expanduser()}")
    encoder = load_hf(spec.backend, src, name=spec.raw, device=device, local_files_only=offline, **opts)
    if spec.kind == "folder":
        from csr_core.training.hf_ft import read_manifest

        manifest = read_manifest(src)
        if manifest is not None:  # fine-tuned here: the leakage guard refuses its training photos
            encoder.training_image_ids = list(manifest.get("training_image_ids", ()))
    return encoder


def cached_hf_repos() -> list[str]:
    """hf:/blip: names of hub-cache repos holding a config of a supported class and weights."""
    cache = hub_cache_dir()
    if not cache.is_dir():
        return []
    from huggingface_hub import try_to_load_from_cache

    out = []
    for d in sorted(cache.glob("models--*")):
        repo = d.name[len("models--"):].replace("--", "/")
        cfg_path = try_to_load_from_cache(repo, "config.json", cache_dir=str(cache))
        if not isinstance(cfg_path, str) or not hub_cached(repo, _HF_WEIGHTS):
            continue
        try:
            cfg = _io.read_json_file(cfg_path, "cached model config")
        except CSRError:
            continue
        if cfg.get("model_type") == "clip":
            out.append(f"hf:{repo}")
        elif cfg.get("model_type") == "blip" and "BlipForImageTextRetrieval" in (cfg.get("architectures") or []):
            out.append(f"blip:{repo}")
    return out


def _hf_backend(kind: str) -> Backend:
    cls = _HF_CLASSES[kind][1]

    def describe() -> BackendInfo:
        try:
            import transformers
        except ImportError as e:
            return BackendInfo(kind, False, f"transformers is not installed ({e})")
        n = sum(r.startswith(kind + ":") for r in cached_hf_repos())
        return BackendInfo(kind, True, f"transformers {transformers.__version__} {cls}: local folders "
                           f"({kind}:/path); {n} cached hub repo(s)")

    return Backend(
        name=kind, grammar=f"{kind}:org/repo | {kind}:/local/folder (transformers {cls})", claims=_prefixed(kind),
        parse=_hf_parse, missing=_hf_missing, load=_hf_load,
        options=lambda: frozenset({"image_workers", "max_pixels", "max_length"}), describe=describe,
        offline_models=_installed_or_empty(lambda: [r for r in cached_hf_repos() if r.startswith(kind + ":")]),
        download_kinds=frozenset({"hub"}),
    )


# ---------------------------------------------------------------- csr-mini (embedded, offline)


def _csr_mini_claims(raw: str) -> bool:
    return raw == "csr-mini" or raw.startswith(("csr-mini:", "csr-mini-"))


def _csr_mini_names() -> list[str]:
    from csr_core.encoders import csr_mini  # lazy: it pulls in the towers' packages; a failure here is loud

    return list(csr_mini.list_csr_mini())


def _csr_mini_options() -> frozenset[str]:
    from csr_core.encoders.csr_mini import load_csr_mini

    params = inspect.signature(load_csr_mini).parameters
    return frozenset(k for k, p in list(params.items())[1:] if p.kind != p.VAR_KEYWORD) - {"device"}


def _csr_mini_load(spec: ModelSpec, device: str | None, opts: dict, offline: bool) -> Encoder:
    from csr_core.encoders.csr_mini import load_csr_mini

    return load_csr_mini(spec.raw, device=device, **opts)


def _csr_mini_describe() -> BackendInfo:
    names = _csr_mini_names()
    if names:
        return BackendInfo("csr-mini", True, f"embedded pretrained towers shipped in wheels: {', '.join(names)}")
    return BackendInfo("csr-mini", False, "csr_core.encoders.csr_mini lists no trained heads (list_csr_mini() is "
                       "empty)")


BACKENDS: dict[str, Backend] = {
    "open_clip": Backend(
        name="open_clip",
        grammar="open_clip:ARCH/TAG | open_clip:ARCH[@ckpt] | open_clip:hf-hub:org/repo | open_clip:local-dir:/dir | "
                "open_clip-config:/x.json[@ckpt]",
        claims=_prefixed("open_clip", "open_clip-config"), parse=_open_clip_parse, missing=_open_clip_missing,
        load=_open_clip_load, options=lambda: frozenset({"precision", "image_workers", "max_pixels", "cache_dir"}),
        describe=_open_clip_describe, offline_models=_installed_or_empty(cached_open_clip_tags),
        download_kinds=frozenset({"tag", "hf-hub"}),
    ),
    "hf": _hf_backend("hf"),
    "blip": _hf_backend("blip"),
    "csr-mini": Backend(
        name="csr-mini", grammar="csr-mini | csr-mini-m | csr-mini:ARM[/sSEED][+topN] (embedded, offline)",
        claims=_csr_mini_claims, parse=lambda raw: ModelSpec(raw, "csr-mini", "embedded"),
        missing=lambda spec, opts: [], load=_csr_mini_load, options=_csr_mini_options, describe=_csr_mini_describe,
        offline_models=_csr_mini_names,
    ),
}
