"""URIEL typological distances (urielplus, memoised on disk) and language families (Glottolog via urielplus)."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from csr_core import _io
from csr_core.errors import DataError
from csr_core.typology_cache import DistanceCache
from csr_core.languages.codes import caption_set_key, normalize_lang, typology_lang

# --------------------------------------------------------------------------------------------------------------
# URIEL
# --------------------------------------------------------------------------------------------------------------

DistanceKind = Literal["genetic", "syntactic", "featural", "phonological", "inventory", "geographic", "script"]
#: The six URIEL distances of the paper's analysis, in display order.
DISTANCE_KINDS: tuple[str, ...] = ("genetic", "syntactic", "featural", "phonological", "inventory", "geographic")
#: Also accepted: URIEL+'s writing-system distance.
ALL_KINDS: tuple[str, ...] = DISTANCE_KINDS + ("script",)

_URIEL_FILES = ("family_features.npz", "features.npz", "geocoord_features.npz", "script_features.npz")
_KIND_MATRIX = {"genetic": 0, "syntactic": 1, "featural": 1, "phonological": 1, "inventory": 1,
                "geographic": 2, "script": 3}
_KIND_PREFIX = {"syntactic": "S_", "phonological": "P_", "inventory": "INV_"}

_LOCK = threading.RLock()
log = logging.getLogger(__name__)


class _LoggingShim:
    """Stands in for the ``logging`` module inside urielplus: its ``logging.info(...)`` calls go to the named
    ``urielplus`` logger instead of the root logger (which ``logging.info`` would configure on first use)."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def __getattr__(self, name: str):
        if name in {"debug", "info", "warning", "error", "exception", "critical", "log"}:
            return getattr(self._logger, name)
        return getattr(logging, name)


@functools.lru_cache(maxsize=1)
def _import_urielplus():
    """Import urielplus without letting its module-level ``logging.basicConfig(INFO)`` reconfigure the app's logs."""
    import sys

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        from urielplus import urielplus as up
    except ImportError as exc:  # pragma: no cover - the package is a hard requirement
        raise DataError("the 'urielplus' package is required for URIEL distances: pip install urielplus") from exc
    finally:
        for h in list(root.handlers):
            if h not in handlers:
                root.removeHandler(h)
        root.setLevel(level)
    shim = _LoggingShim(logging.getLogger("urielplus"))
    for name, module in list(sys.modules.items()):
        if name.startswith("urielplus") and getattr(module, "logging", None) is logging:
            module.logging = shim
    return up


def _urielplus_version() -> str:
    try:
        return importlib.metadata.version("urielplus")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def uriel_source() -> str:
    """Where the distances come from, for notes and manifests."""
    return f"URIEL (released vectors) via urielplus {_urielplus_version()}, angular distance"


@functools.lru_cache(maxsize=1)
def _load_uriel():
    """A URIEL+ object over the released vectors, read in place: nothing is written anywhere.

    ``URIELPlus()`` copies its four .npz files from ``database/original_uriel`` into ``database/`` on first use, which
    fails on a read-only install and would pick up whatever another process saved there. This subclass loads the
    originals directly and keeps caching off, so the package folder is only ever read.
    """
    up = _import_urielplus()

    class _ReadOnlyURIEL(up.URIELPlus):
        def __init__(self) -> None:  # replaces URIELPlus.__init__ (which copies files), then runs the base chain
            self.files = list(_URIEL_FILES)
            self.cur_dir = str(Path(up.__file__).resolve().parent)
            src = Path(self.cur_dir) / "database" / "original_uriel"
            self.loaded_features = []
            for name in self.files:
                path = src / name
                if not path.is_file():
                    raise DataError(f"urielplus data file missing: {path} (reinstall urielplus)")
                # allow_pickle: the installed package's own feature-name arrays are object arrays
                with np.load(path, allow_pickle=True) as npz:
                    self.loaded_features.append(dict(npz))
            self.feats = [m["feats"] for m in self.loaded_features]
            self.langs = [m["langs"] for m in self.loaded_features]
            self.data = [m["data"] for m in self.loaded_features]
            self.sources = [m["sources"] for m in self.loaded_features]
            super(up.URIELPlus, self).__init__(self.feats, self.langs, self.data, self.sources)
            self.databases = self.imputation = self.querying = self
            self._refresh_indexes()
            self.set_cache(False)

    return _ReadOnlyURIEL()


def _uriel():
    with _LOCK:
        return _load_uriel()


@functools.lru_cache(maxsize=1)
def _uriel_index() -> dict[str, tuple[str, ...]]:
    """Canonical code (and its base language) -> the URIEL ISO 639-3 entries that normalise to it."""
    u = _uriel()
    index: dict[str, list[str]] = {}
    for raw in map(str, u.langs[0]):
        try:
            canon = normalize_lang(raw)
        except DataError:
            continue
        index.setdefault(canon, []).append(raw)
    return {k: tuple(v) for k, v in index.items()}


@functools.lru_cache(maxsize=16)
def _known_counts(kind: str) -> dict[str, int]:
    """Per URIEL entry, how many features of this kind it knows (genetic: lineage nodes it belongs to)."""
    u = _uriel()
    idx = _KIND_MATRIX[kind]
    data = np.asarray(u.data[idx])
    langs = list(map(str, u.langs[idx]))
    if kind == "genetic":
        counts = (data > 0).any(axis=2).sum(axis=1)
    else:
        cols = np.arange(len(u.feats[idx]))
        if kind in _KIND_PREFIX:
            cols = np.array([i for i, f in enumerate(map(str, u.feats[idx])) if f.startswith(_KIND_PREFIX[kind])])
        counts = (data[:, cols, :] > -1).any(axis=2).sum(axis=1)
    return dict(zip(langs, counts.tolist()))


def _check_kind(kind: str) -> str:
    if kind not in ALL_KINDS:
        raise DataError(f"unknown URIEL distance kind {kind!r}; choose one of {', '.join(ALL_KINDS)}")
    return kind


def _candidates(code: str) -> tuple[str, tuple[str, ...]]:
    """The URIEL entries for the canonical code itself, else for its base language (caption-set suffix dropped)."""
    canon = typology_lang(code)
    index = _uriel_index()
    found = index.get(canon) or index.get(canon.split("-", 1)[0]) or ()
    return canon, found


def uriel_code(code: str, kind: str = "genetic") -> str:
    """The URIEL entry (ISO 639-3) used for ``code`` and this distance kind; DataError if URIEL has no usable entry."""
    from langcodes import Language

    _check_kind(kind)
    canon, found = _candidates(code)
    if not found:
        raise DataError(f"language {code!r} ({canon}) is not in URIEL, so it has no {kind} distance")
    counts = _known_counts(kind)
    base = canon.split("-", 1)[0]
    if base != canon and not any(counts.get(c, 0) for c in found):
        found = _uriel_index().get(base, found)  # a regional/script variant without data: use its language's
    own = Language.get(base).to_alpha3()
    best = max(found, key=lambda c: (counts.get(c, 0), c == own, c))
    if counts.get(best, 0) == 0:
        what = "lineage" if kind == "genetic" else f"{kind} features"
        raise DataError(f"URIEL has no {what} for {code!r} ({canon}; entries {', '.join(found)})")
    return best


@functools.lru_cache(maxsize=1)
def _disk_cache() -> DistanceCache:
    return DistanceCache(f"uriel-distances-urielplus-{_urielplus_version()}")


def _pair_distance(kind: str, a: str, b: str) -> float:
    """urielplus' own ``new_distance`` on two URIEL entries, memoised on disk (see csr_core.typology_cache)."""
    if a == b:
        return 0.0
    key = f"{kind}|{a}|{b}"
    cached = _disk_cache().get(key)
    if cached is not None:
        return cached
    u = _uriel()
    with _LOCK:
        try:
            value = float(u.new_distance(kind, a, b))
        except ValueError as exc:
            raise DataError(f"URIEL cannot give a {kind} distance for {a}/{b}: {str(exc).splitlines()[0]}") from None
    _disk_cache().put(key, value)
    return value


#: Languages whose pair distances (every kind) ship with the package in ``uriel_distances.json``: every language of
#: the shipped datasets and of the default groups. Others are computed (and memoised on disk) on first use.
SHIPPED_LANGS: tuple[str, ...] = ("en", "de", "fr", "cs", "pt", "zh", "ar", "es", "it", "ru", "ko", "tr", "pl", "ja",
                                  "nl", "hi")
SHIPPED_TABLE = Path(__file__).with_name("uriel_distances.json")
_SHIPPED_FORMAT = 1


def _pair_key(kind: str, a: str, b: str) -> str:
    return "|".join((kind, *sorted((typology_lang(a), typology_lang(b)))))


@functools.lru_cache(maxsize=1)
def _shipped() -> dict[str, float | str]:
    """The shipped table (``kind|a|b`` -> distance, or the reason there is none) when it was computed with the
    installed urielplus; empty otherwise, so another version falls back to computing. Why: loading URIEL and
    resolving codes costs ~2 s and the pair distances ~0.08 s each, so the dashboard's first gap view took 8 s."""
    try:
        raw = _io.read_json_file(SHIPPED_TABLE, "shipped URIEL distance table")
    except (OSError, ValueError) as exc:
        log.warning("ignoring the shipped URIEL table %s (%s): distances are computed", SHIPPED_TABLE, exc)
        return {}
    if (not isinstance(raw, dict) or raw.get("format") != _SHIPPED_FORMAT
            or raw.get("urielplus") != _urielplus_version() or not isinstance(raw.get("distances"), dict)):
        return {}
    return {str(k): (float(v) if isinstance(v, (int, float)) else str(v)) for k, v in raw["distances"].items()
            if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def uriel_distance(a: str, b: str, kind: str = "genetic") -> float:
    """URIEL+ angular distance in [0, 1] between two languages (symmetric; 0 for a language with itself)."""
    _check_kind(kind)
    shipped = _shipped().get(_pair_key(kind, a, b))
    if isinstance(shipped, float):
        return shipped
    if isinstance(shipped, str):
        raise DataError(shipped)
    return _computed_distance(a, b, kind)


def _computed_distance(a: str, b: str, kind: str) -> float:
    ca, cb = uriel_code(a, kind), uriel_code(b, kind)
    x, y = sorted((ca, cb))
    return _pair_distance(kind, x, y)


def write_shipped_table(path: str | Path = SHIPPED_TABLE, langs: Iterable[str] = SHIPPED_LANGS) -> Path:
    """Compute every pair of ``langs`` for every kind with the installed urielplus and write the shipped table
    (atomically). Regenerate after a urielplus upgrade: ``python -m csr_core gaps --write-uriel-table``."""
    import json

    codes = sorted({typology_lang(c) for c in langs})
    distances: dict[str, float | str] = {}
    for kind in ALL_KINDS:
        for i, a in enumerate(codes):
            for b in codes[i:]:
                try:
                    distances[_pair_key(kind, a, b)] = _computed_distance(a, b, kind)
                except DataError as exc:
                    distances[_pair_key(kind, a, b)] = str(exc)
    doc = {"format": _SHIPPED_FORMAT, "urielplus": _urielplus_version(), "source": uriel_source(),
           "languages": codes, "distances": distances}
    out = _io.atomic_write_text(path, json.dumps(doc, indent=0, sort_keys=True, ensure_ascii=False) + "\n")
    _shipped.cache_clear()
    return out


def distance_table(
    langs: Iterable[str], pivot: str = "en", kinds: Iterable[str] = DISTANCE_KINDS
) -> pd.DataFrame:
    """Distance of each language from the pivot, one column per kind; NaN where URIEL lacks the data.

    Index: canonical codes in the given order (duplicates dropped), named ``lang``; a caption-set key keeps its
    suffix (``zh-x-f8k``, distances of ``zh``). ``df.attrs`` holds the pivot, the source and, per cell left NaN, why
    (``df.attrs["missing"]``).
    """
    kinds = tuple(_check_kind(k) for k in kinds)
    canon_pivot = typology_lang(pivot)
    order: list[str] = []
    for lang in langs:
        c = caption_set_key(lang)
        if c not in order:
            order.append(c)
    rows: dict[str, dict[str, float]] = {}
    missing: dict[str, str] = {}
    for lang in order:
        rows[lang] = {}
        for kind in kinds:
            try:
                rows[lang][kind] = uriel_distance(canon_pivot, lang, kind)
            except DataError as exc:
                rows[lang][kind] = math.nan
                missing[f"{lang}/{kind}"] = str(exc)
    df = pd.DataFrame.from_dict(rows, orient="index", columns=list(kinds), dtype=float)
    df.index.name = "lang"
    df.attrs.update(pivot=canon_pivot, source=uriel_source(), missing=missing)
    return df


# --------------------------------------------------------------------------------------------------------------
# families (Glottolog lineage shipped with urielplus)
# --------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _glottolog() -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """ISO 639-3 -> Glottocode, and Glottocode -> (name, top-level family), from urielplus' Glottolog CSVs."""
    up = _import_urielplus()
    folder = Path(up.__file__).resolve().parent / "database" / "urielplus_csvs"
    iso2glotto: dict[str, str] = {}
    lineage: dict[str, tuple[str, str]] = {}
    try:
        m = pd.read_csv(folder / "uriel_glottocode_map.csv", dtype=str, keep_default_na=False)
        g = pd.read_csv(folder / "lang_fam_geo.csv", dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:  # older urielplus: fall back to URIEL's own family features
        log.info("Glottolog lineage unavailable (%s); families come from URIEL family features", exc)
        return iso2glotto, lineage
    iso2glotto = {i.strip(): gc.strip() for i, gc in zip(m["iso_code"], m["glottocode"]) if i.strip() and gc.strip()}
    for gc, name, lin in zip(g["language_id"], g["language_name"], g["lineage"]):
        top = lin.split(",")[0].strip() if lin.strip() else name.strip()  # an isolate is its own family
        lineage[gc] = (name, top)
    return iso2glotto, lineage


@functools.lru_cache(maxsize=1)
def _uriel_top_family() -> dict[str, str]:
    """URIEL entry -> its most inclusive lineage node (the F_ feature shared by most languages)."""
    u = _uriel()
    data = np.asarray(u.data[0])[:, :, 0] > 0
    size = data.sum(axis=0)
    feats = [str(f)[2:] for f in u.feats[0]]
    out = {}
    for i, lang in enumerate(map(str, u.langs[0])):
        cols = np.flatnonzero(data[i])
        if cols.size:
            out[lang] = feats[int(cols[np.argmax(size[cols])])]
    return out


def _family(canon: str) -> str | None:
    from langcodes import Language

    try:
        _, found = _candidates(canon)
    except DataError:
        found = ()
    own = Language.get(canon).to_alpha3()
    order = sorted(set(found) | {own}, key=lambda c: (c != own, c))
    iso2glotto, lineage = _glottolog()
    for iso in order:
        gc = iso2glotto.get(iso)
        if gc and gc in lineage:
            return lineage[gc][1]
    tops = _uriel_top_family()
    for iso in order:
        if iso in tops:
            return tops[iso]
    return None
