"""Resolve model names to encoders, and say up front what can run offline here.

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

A name whose files are not on this machine while offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, or no network)
fails fast with a ModelError that lists what does run here, instead of hanging on a download.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from csr_core.encoders.base import Encoder
from csr_core.errors import CSRError, ModelError

_CKPT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_OC_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_HF_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "sentencepiece.bpe.model",
                    "spiece.model")
_NET_CACHE: dict[str, tuple[float, bool]] = {}
_NET_TTL_S = 60.0


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


# ---------------------------------------------------------------- parsing


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


def parse_model_name(name: str) -> ModelSpec:
    """Parse a model name (no I/O beyond nothing; files are checked when loading)."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"empty model name {name!r}; try one of: csr-mini, open_clip:ViT-B-32/openai, hf:/folder")
    raw = name.strip()
    if raw == "csr-mini" or raw.startswith(("csr-mini:", "csr-mini-")):
        return ModelSpec(raw, "csr-mini", "embedded")
    if ":" not in raw:
        raise ModelError(
            f"model name {raw!r} has no backend prefix; use open_clip:..., open_clip-config:..., hf:..., blip:... "
            "or csr-mini (e.g. open_clip:ViT-B-32/openai)"
        )
    prefix, rest = raw.split(":", 1)
    if not rest:
        raise ModelError(f"model name {raw!r}: nothing after {prefix + ':'!r}")
    if prefix == "open_clip-config":
        cfg, ckpt = _split_checkpoint(rest)
        return ModelSpec(raw, "open_clip", "config", path=cfg, checkpoint=ckpt)
    if prefix == "open_clip":
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
    if prefix in ("hf", "blip"):
        if _looks_like_path(rest) or Path(rest).expanduser().is_dir():
            return ModelSpec(raw, prefix, "folder", path=rest)
        if rest.count("/") != 1 or rest.startswith("/") or rest.endswith("/"):
            raise ModelError(f"model name {raw!r}: expected {prefix}:org/repo or {prefix}:/path/to/folder")
        return ModelSpec(raw, prefix, "hub", repo=rest)
    raise ModelError(f"model name {raw!r}: unknown backend {prefix!r}; known: open_clip, open_clip-config, hf, blip, "
                     "csr-mini")


# ---------------------------------------------------------------- offline checks


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache as the environment says now (HF_HUB_CACHE, else HF_HOME/hub)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:
        return Path.home() / ".cache" / "huggingface" / "hub"


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def _network_reachable() -> bool:
    """Can we open a TCP connection to the hub? Cached for a minute; a proxy counts as reachable (not probed)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme != "http" else 80)
    now = time.monotonic()
    hit = _NET_CACHE.get(host)
    if hit and now - hit[0] < _NET_TTL_S:
        return hit[1]
    try:
        socket.create_connection((host, port), timeout=2.0).close()
        ok = True
    except OSError:
        ok = False
    _NET_CACHE[host] = (now, ok)
    return ok


def offline_reason() -> str | None:
    """Why downloads are impossible right now (None when they are possible)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if _truthy(os.environ.get(var)):
            return f"{var}=1 is set"
    if not _network_reachable():
        return "there is no network (the Hugging Face Hub cannot be reached)"
    return None


def _hub_cached(repo: str, filenames: tuple[str, ...], cache_dir: str | None = None) -> bool:
    """Is any of `filenames` of hub repo `repo` in the local cache (no network)?"""
    cache = Path(cache_dir).expanduser() if cache_dir else hub_cache_dir()
    if not cache.is_dir():
        return False
    from huggingface_hub import try_to_load_from_cache

    for f in filenames:
        try:
            if isinstance(try_to_load_from_cache(repo, f, cache_dir=str(cache)), str):
                return True
        except Exception:  # malformed repo ids etc.: treat as not cached
            return False
    return False


def _open_clip_needs(spec: ModelSpec, cache_dir: str | None = None) -> list[tuple[str, str]]:
    """(what, where) pairs this open_clip spec needs from the network and lacks locally; [] when all is local.

    `cache_dir` is open_clip's own override (the hub cache for hub files, else ~/.cache/clip for URL downloads)."""
    import open_clip

    from csr_core.encoders.open_clip_backend import hf_text_repos, read_model_config

    missing: list[tuple[str, str]] = []

    def need_text(cfg: dict | None) -> None:
        for repo in hf_text_repos(cfg):
            if not _hub_cached(repo, ("config.json",) + _TOKENIZER_FILES):
                missing.append(("the text tower's config and tokenizer", f"hf-hub:{repo}"))

    if spec.kind in ("tag", "random", "checkpoint"):
        cfg = open_clip.get_model_config(spec.arch) if spec.arch in open_clip.list_models() else None
        if cfg is None:
            return []  # unknown arch: the loader raises a clear error with suggestions
        need_text(cfg)
        if spec.kind == "tag":
            pcfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
            if not pcfg:
                tags = open_clip.list_pretrained_tags_by_model(spec.arch)
                raise ModelError(f"{spec.raw}: {spec.pretrained!r} is not a pretrained tag of {spec.arch}; "
                                 f"known tags: {tags or 'none'}")
            if pcfg.get("file"):
                return missing
            if pcfg.get("hf_hub"):
                repo, fname = os.path.split(pcfg["hf_hub"])  # 'org/repo/' or 'org/repo/file.bin', as open_clip
                files = (fname,) if fname else _OC_WEIGHTS
                if fname.endswith((".bin", ".pth")):
                    files = (fname[:-4] + ".safetensors", fname)
                if not _hub_cached(repo, files, cache_dir):
                    missing.append(("pretrained weights", f"hf-hub:{repo}"))
            elif pcfg.get("url"):
                target = Path(cache_dir or "~/.cache/clip").expanduser() / os.path.basename(pcfg["url"])
                if not target.is_file():
                    missing.append(("pretrained weights", pcfg["url"]))
    elif spec.kind == "hf-hub":
        if not _hub_cached(spec.repo, ("open_clip_config.json",), cache_dir):
            missing.append(("open_clip_config.json and weights", f"hf-hub:{spec.repo}"))
        else:
            if not _hub_cached(spec.repo, _OC_WEIGHTS, cache_dir):
                missing.append(("weights", f"hf-hub:{spec.repo}"))
            from huggingface_hub import try_to_load_from_cache

            cache = str(Path(cache_dir).expanduser()) if cache_dir else str(hub_cache_dir())
            cfg_path = try_to_load_from_cache(spec.repo, "open_clip_config.json", cache_dir=cache)
            try:
                need_text(json.loads(Path(cfg_path).read_text()).get("model_cfg"))
            except (OSError, ValueError):
                pass
    elif spec.kind == "config":
        need_text(read_model_config(spec.path))
    elif spec.kind == "local-dir":
        p = Path(spec.path).expanduser() / "open_clip_config.json"
        if p.is_file():
            try:
                need_text(json.loads(p.read_text()).get("model_cfg"))
            except (OSError, ValueError):
                pass
    return missing


def _hf_needs(spec: ModelSpec) -> list[tuple[str, str]]:
    if spec.kind == "folder":
        return []
    if _hub_cached(spec.repo, ("config.json",)) and _hub_cached(spec.repo, _HF_WEIGHTS):
        return []
    return [("config and weights", f"hf-hub:{spec.repo}")]


def _offline_error(spec: ModelSpec, reason: str, missing: list[tuple[str, str]], detail: str = "") -> ModelError:
    what = "; ".join(f"{w} from {where}" for w, where in missing) or "files from the Hugging Face Hub"
    runnable = [f"{b.name} ({b.reason})" for b in available_backends() if b.runs_offline_here]
    models = list_offline_models()
    msg = (
        f"model {spec.raw!r} cannot be resolved offline: it needs {what}, which is not in the local cache, and "
        f"{reason}. Backends that run here: {'; '.join(runnable) or 'none'}."
    )
    if models:
        msg += f" Models available offline: {', '.join(models[:12])}{' ...' if len(models) > 12 else ''}."
    msg += (" Or point at local files: open_clip:ARCH@/path/weights.safetensors, open_clip-config:/path/config.json, "
            "hf:/path/folder, blip:/path/folder.")
    if detail:
        msg += f" ({detail})"
    return ModelError(msg)


# ---------------------------------------------------------------- listing


def _csr_mini_names() -> tuple[list[str], str]:
    from csr_core.encoders import csr_mini  # lazy: it pulls in the towers' packages; a failure here is loud

    return list(csr_mini.list_csr_mini()), ""


def _cached_open_clip_tags() -> list[str]:
    if not hub_cache_dir().is_dir() and not Path("~/.cache/clip").expanduser().is_dir():
        return []
    import open_clip

    out = []
    for arch, tag in open_clip.list_pretrained():
        spec = ModelSpec(f"open_clip:{arch}/{tag}", "open_clip", "tag", arch=arch, pretrained=tag)
        try:
            if not _open_clip_needs(spec):
                out.append(spec.raw)
        except CSRError:
            continue
    return out


def _cached_hf_repos() -> list[str]:
    cache = hub_cache_dir()
    if not cache.is_dir():
        return []
    from huggingface_hub import try_to_load_from_cache

    out = []
    for d in sorted(cache.glob("models--*")):
        repo = d.name[len("models--"):].replace("--", "/")
        cfg_path = try_to_load_from_cache(repo, "config.json", cache_dir=str(cache))
        if not isinstance(cfg_path, str) or not _hub_cached(repo, _HF_WEIGHTS):
            continue
        try:
            cfg = json.loads(Path(cfg_path).read_text())
        except (OSError, ValueError):
            continue
        if cfg.get("model_type") == "clip":
            out.append(f"hf:{repo}")
        elif cfg.get("model_type") == "blip" and "BlipForImageTextRetrieval" in (cfg.get("architectures") or []):
            out.append(f"blip:{repo}")
    return out


def list_offline_models() -> list[str]:
    """Names that load here without any download: csr-mini first, then cached open_clip tags and hub repos.

    Random-weight architectures are left out on purpose: they are for timing, not for results.
    """
    names, _ = _csr_mini_names()
    try:
        names += _cached_open_clip_tags()
    except ImportError:
        pass
    try:
        names += _cached_hf_repos()
    except ImportError:
        pass
    return list(dict.fromkeys(names))


def available_backends() -> list[BackendInfo]:
    """Each backend, whether it can produce an encoder here without the network, and why (for the UI and errors)."""
    infos = []
    try:
        import open_clip

        n = len(_cached_open_clip_tags())
        infos.append(BackendInfo("open_clip", True, f"open_clip {open_clip.__version__}: local configs, local "
                                 f"checkpoints and random init; {n} cached pretrained tag(s)"))
    except ImportError as e:
        infos.append(BackendInfo("open_clip", False, f"open_clip_torch is not installed ({e})"))
    try:
        import transformers

        repos = _cached_hf_repos()
        for kind, cls in (("hf", "CLIPModel"), ("blip", "BlipForImageTextRetrieval")):
            n = sum(r.startswith(kind + ":") for r in repos)
            infos.append(BackendInfo(kind, True, f"transformers {transformers.__version__} {cls}: local folders "
                                     f"({kind}:/path); {n} cached hub repo(s)"))
    except ImportError as e:
        infos += [BackendInfo(k, False, f"transformers is not installed ({e})") for k in ("hf", "blip")]
    names, why = _csr_mini_names()
    if names:
        infos.append(BackendInfo("csr-mini", True, f"embedded pretrained towers shipped in wheels: {', '.join(names)}"))
    else:
        infos.append(BackendInfo("csr-mini", False, why or "csr_core.encoders.csr_mini is present but lists no "
                                 "trained heads (list_csr_mini() is empty)"))
    return infos


# ---------------------------------------------------------------- loading


def load_encoder(name: str, device: str | None = None, **opts) -> Encoder:
    """Resolve `name` to a ready `Encoder` on `device` (cuda when available, unless given).

    `opts` go to the backend: open_clip takes precision, image_workers, max_pixels, cache_dir; hf/blip take
    image_workers, max_pixels, max_length. Every failure is a ModelError saying what to do.
    """
    spec = parse_model_name(name)
    if spec.backend == "csr-mini":
        return _load_csr_mini(spec, device, opts)

    if spec.backend == "open_clip":
        missing = _open_clip_needs(spec, opts.get("cache_dir"))  # also validates the tag
    else:
        missing = _hf_needs(spec)
    reason = offline_reason() if (missing or spec.kind in ("tag", "hf-hub", "hub")) else None
    if missing and reason:
        raise _offline_error(spec, reason, missing)
    try:
        if spec.backend == "open_clip":
            return _load_open_clip(spec, device, opts)
        from csr_core.encoders.hf_backend import load_hf

        src = spec.path if spec.kind == "folder" else spec.repo
        if spec.kind == "folder" and not Path(src).expanduser().is_dir():
            raise ModelError(f"{spec.raw}: folder not found: {Path(src).expanduser()}")
        return load_hf(spec.backend, src, name=spec.raw, device=device, local_files_only=reason is not None,
                       **_check_opts(spec, opts, {"image_workers", "max_pixels", "max_length"}))
    except ModelError as e:
        if reason and spec.kind in ("tag", "hf-hub", "hub"):
            raise _offline_error(spec, reason, [], detail=str(e)) from e
        raise


def _check_opts(spec: ModelSpec, opts: dict, allowed: set[str]) -> dict:
    unknown = sorted(set(opts) - allowed)
    if unknown:
        raise ModelError(f"{spec.raw}: unknown option(s) {unknown} for the {spec.backend} backend; "
                         f"allowed: {sorted(allowed)}")
    return opts


def _load_open_clip(spec: ModelSpec, device: str | None, opts: dict) -> Encoder:
    from csr_core.encoders.open_clip_backend import load_open_clip, register_model_config

    opts = _check_opts(spec, opts, {"precision", "image_workers", "max_pixels", "cache_dir"})
    common = dict(name=spec.raw, device=device, **opts)
    if spec.kind == "config":
        arch = register_model_config(spec.path)
        return load_open_clip(arch, checkpoint=spec.checkpoint, **common)
    if spec.kind == "hf-hub":
        return load_open_clip(hf_hub=spec.repo, **common)
    if spec.kind == "local-dir":
        folder = Path(spec.path).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ModelError(f"{spec.raw}: {folder} has no open_clip_config.json")
        return load_open_clip(local_dir=str(folder), **common)
    if spec.kind == "checkpoint":
        return load_open_clip(spec.arch, checkpoint=spec.checkpoint, **common)
    return load_open_clip(spec.arch, pretrained=spec.pretrained, **common)  # tag or random


def _load_csr_mini(spec: ModelSpec, device: str | None, opts: dict) -> Encoder:
    import inspect

    from csr_core.encoders import csr_mini as mod

    params = inspect.signature(mod.load_csr_mini).parameters
    allowed = {k for k, p in list(params.items())[1:] if p.kind != p.VAR_KEYWORD} - {"device"}  # e.g. heads_dir
    return mod.load_csr_mini(spec.raw, device=device, **_check_opts(spec, opts, allowed))
