"""On-disk memo of URIEL pair distances under ``cache_dir()/typology``.

Why: urielplus needs ~0.3 s for one genetic distance (a Python loop over 3,718 lineage features), so a 13-language
gap table costs seconds in every new process (each dashboard start). The values depend only on the urielplus
version, which is part of the file name. Never written inside a package folder; a cache that cannot be read or
written is simply ignored (the distance is recomputed).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
from pathlib import Path

from csr_core import _io
from csr_core.paths import cache_dir

log = logging.getLogger(__name__)
FORMAT = 1


class DistanceCache:
    """``key -> float in [0, 1]``, memoised in memory per file and written through atomically (temp + rename)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._lock = threading.RLock()
        self._memory: dict[Path, dict[str, float]] = {}

    def path(self) -> Path:
        """Resolved at each call so that a changed ``CSR_CACHE_DIR`` (tests) takes effect."""
        return cache_dir() / "typology" / f"{self.namespace}.json"

    def _table(self, path: Path) -> dict[str, float]:
        if path not in self._memory:
            self._memory[path] = self._read(path)
        return self._memory[path]

    @staticmethod
    def _read(path: Path) -> dict[str, float]:
        try:
            if not path.exists():
                return {}
            raw = _io.read_json_file(path, "typology cache")
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable typology cache %s (%s); it will be rebuilt", path, exc)
            return {}
        if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("distances"), dict):
            log.warning("ignoring typology cache %s: not format %d", path, FORMAT)
            return {}
        out = {}
        for key, value in raw["distances"].items():
            if isinstance(value, (int, float)) and math.isfinite(value) and 0.0 <= value <= 1.0:
                out[str(key)] = float(value)
        return out

    def get(self, key: str) -> float | None:
        with self._lock:
            return self._table(self.path()).get(key)

    def put(self, key: str, value: float) -> None:
        with self._lock:
            path = self.path()
            table = self._table(path)
            table.update({k: v for k, v in self._read(path).items() if k not in table})  # keep other writers' keys
            table[key] = float(value)
            tmp: str | None = None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"format": FORMAT, "namespace": self.namespace, "distances": table}, fh, sort_keys=True)
                os.replace(tmp, path)
            except OSError as exc:
                log.debug("typology cache %s not written (%s)", path, exc)
                if tmp is not None and os.path.exists(tmp):
                    os.unlink(tmp)

    def clear_memory(self) -> None:
        with self._lock:
            self._memory.clear()
