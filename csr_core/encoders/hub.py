"""What the Hugging Face Hub cache holds and whether downloads are possible now: the facts every backend's offline
check reads, so that a name whose files are missing fails fast instead of hanging on a download."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

_NET_CACHE: dict[str, tuple[float, bool]] = {}
_NET_TTL_S = 60.0


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


def hub_cached(repo: str, filenames: tuple[str, ...], cache_dir: str | None = None) -> bool:
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
