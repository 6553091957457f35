"""Resolve model names to encoders, and say up front what can run offline here.

Every decision that depends on the kind of model is the backend's (csr_core.encoders.backends.BACKENDS, where the
name grammar is documented); this module only finds the backend a name belongs to and runs the same steps for all:
parse → check options → list what is missing locally → fail fast offline, or load.

A name whose files are not on this machine while offline (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE, or no network)
fails fast with a ModelError that lists what does run here, instead of hanging on a download.
"""

from __future__ import annotations

from csr_core.encoders.backends import BACKENDS, Backend, BackendInfo, Missing, ModelSpec
from csr_core.encoders.base import Encoder
from csr_core.encoders.hub import hub_cache_dir, offline_reason
from csr_core.errors import ModelError

__all__ = ["BackendInfo", "ModelSpec", "MODEL_DIRS_ENV", "available_backends", "backend_of", "check_model_paths",
           "hub_cache_dir", "list_offline_models", "load_encoder", "offline_reason", "parse_model_name"]

#: Opt-in confinement for a shared server: when set (folders separated by os.pathsep), a model name may only point at
#: files inside these folders (symlinks resolved). Unset: any path the process can read, as on one's own machine.
MODEL_DIRS_ENV = "CSR_MODEL_DIRS"


def backend_of(raw: str) -> Backend:
    """The backend a (stripped, non-empty) model name belongs to, or a ModelError naming the known ones."""
    for backend in BACKENDS.values():
        if backend.claims(raw):
            return backend
    known = ", ".join(BACKENDS)
    if ":" not in raw:
        raise ModelError(f"model name {raw!r} has no backend prefix; use open_clip:..., open_clip-config:..., hf:..., "
                         f"blip:... or csr-mini (e.g. open_clip:ViT-B-32/openai); backends: {known}")
    raise ModelError(f"model name {raw!r}: unknown backend {raw.split(':', 1)[0]!r}; known: {known} "
                     "(open_clip also takes open_clip-config:)")


def parse_model_name(name: str) -> ModelSpec:
    """Parse a model name (no I/O: files are checked when loading)."""
    if not isinstance(name, str) or not name.strip():
        raise ModelError(f"empty model name {name!r}; try one of: csr-mini, open_clip:ViT-B-32/openai, hf:/folder")
    raw = name.strip()
    return backend_of(raw).parse(raw)


def check_model_paths(spec: ModelSpec) -> None:
    """ModelError when ``$CSR_MODEL_DIRS`` is set and a local file or folder of the name lies outside it."""
    import os
    from pathlib import Path

    allowed_env = os.environ.get(MODEL_DIRS_ENV, "").strip()
    if not allowed_env:
        return
    allowed = [Path(p).expanduser().resolve() for p in allowed_env.split(os.pathsep) if p.strip()]
    for given in (spec.path, spec.checkpoint):
        if not given:
            continue
        real = Path(given).expanduser().resolve()
        if not any(real == root or root in real.parents for root in allowed):
            raise ModelError(f"model {spec.raw!r}: {given} is outside the folders this server allows "
                             f"({MODEL_DIRS_ENV}={allowed_env}); put the model there or ask the admin")


def list_offline_models() -> list[str]:
    """Names that load here without any download: csr-mini first, then cached open_clip tags and hub repos.

    Random-weight architectures are left out on purpose: they are for timing, not for results.
    """
    order = ["csr-mini"] + [b for b in BACKENDS if b != "csr-mini"]
    return list(dict.fromkeys(n for b in order for n in BACKENDS[b].offline_models()))


def available_backends() -> list[BackendInfo]:
    """Each backend, whether it can produce an encoder here without the network, and why (for the UI and errors)."""
    return [backend.describe() for backend in BACKENDS.values()]


def _offline_error(spec: ModelSpec, reason: str, missing: Missing, detail: str = "") -> ModelError:
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


def load_encoder(name: str, device: str | None = None, **opts) -> Encoder:
    """Resolve `name` to a ready `Encoder` on `device` (cuda when available, unless given).

    `opts` go to the backend (each backend's `options()` says which it takes, e.g. open_clip: precision,
    image_workers, max_pixels, cache_dir). Every failure is a ModelError saying what to do.
    """
    spec = parse_model_name(name)
    check_model_paths(spec)
    backend = BACKENDS[spec.backend]
    opts = backend.check_options(spec, opts)
    missing = backend.missing(spec, opts)  # also validates e.g. an open_clip tag
    downloads = spec.kind in backend.download_kinds
    reason = offline_reason() if (missing or downloads) else None
    if missing and reason:
        raise _offline_error(spec, reason, missing)
    try:
        return backend.load(spec, device, opts, reason is not None)
    except ModelError as e:
        if reason and downloads:
            raise _offline_error(spec, reason, [], detail=str(e)) from e
        raise
