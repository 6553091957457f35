"""Language codes, names, scripts, families and URIEL typological distances, all from maintained libraries.

Why this module exists: datasets spell languages differently (FLORES ``arb_Arab``, XTD10 ``jp``, Multi30K ``de``),
and the gap analysis needs one key per language plus its distance from English. Everything here is computed offline
from data shipped in PyPI wheels: ``langcodes`` + ``language-data`` (IANA registry, CLDR) for codes, names and
scripts; ``urielplus`` (the released URIEL vectors, plus the Glottolog lineage table it ships) for distances and
families.

Canonical code (``normalize_lang``), decided rules:

- language subtag: ISO 639-1 where one exists, else ISO 639-3 (``deu``/``ger`` -> ``de``, ``acm`` stays ``acm``).
  Deprecated and bibliographic codes follow CLDR (``iw`` -> ``he``, ``tgl`` -> ``fil``, ``prs`` -> ``fa-AF``).
- a 3-letter code that CLDR names the standard member of a macrolanguage becomes the macrolanguage
  (``arb`` -> ``ar``, ``cmn`` -> ``zh``, ``pes`` -> ``fa``, ``zsm`` -> ``ms``); other members keep their own code
  (``acm``, ``ars``), and a code that has its own ISO 639-1 tag keeps it (``twi`` -> ``tw``, not ``ak``).
- script: dropped when it is the language's default script (CLDR likely subtags, then the registry's
  Suppress-Script, then CLDR's single primary script), kept otherwise
  (``zho_Hans`` -> ``zh``, ``zho_Hant`` -> ``zh-Hant``, ``kas_Deva`` -> ``ks-Deva``). Korean ``Hang`` and Japanese
  ``Hira``/``Kana`` count as their composite default (``Kore``/``Jpan``). Where no default is known the script is
  dropped too (one spelling for ``cjk_Latn`` and ``cjk``); ``normalize_langs`` catches the rare collision.
- region: kept when given (``pt-BR`` stays ``pt-BR``); it never changes the typology (``base_lang`` drops it).
- the one dataset quirk: ``jp`` (XTD10/STAIR file names) -> ``ja``; see ``DATASET_ALIASES``.

Distances are URIEL+ angular distances in [0, 1] (0 = identical) between the released URIEL vectors, computed by
``urielplus``' own ``new_distance`` on the features both languages have. Where URIEL holds a macrolanguage and its
standard member (``ara``/``arb``, ``zho``/``cmn``) the entry with more known features of that kind is used
(``uriel_code`` says which). Pair distances are memoised in ``cache_dir()/typology`` (csr_core.typology_cache);
nothing is ever written inside a package folder. URIEL+'s optional database integration (Grambank, SAPHON, ...) is
not applied: it takes about a minute and switches the whole table to Glottocodes.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import math
import re
import threading
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

import numpy as np
import pandas as pd

from csr_core.errors import DataError
from csr_core.typology_cache import DistanceCache

# --------------------------------------------------------------------------------------------------------------
# codes
# --------------------------------------------------------------------------------------------------------------

#: Dataset spellings that are not language codes at all; the only hand-kept table. ``jp`` is Japan's country code,
#: used as a language code by XTD10 (STAIR captions).
DATASET_ALIASES: dict[str, str] = {"jp": "ja"}

#: ISO 15924 composite scripts: a text in one of the parts is written in the composite default script.
_SCRIPT_PARTS: dict[str, frozenset[str]] = {
    "Jpan": frozenset({"Hani", "Hira", "Kana", "Hrkt"}),
    "Kore": frozenset({"Hang", "Hani"}),
}


@dataclass(frozen=True)
class _Registry:
    """The facts from the IANA subtag registry (shipped by language-data) that langcodes does not expose."""

    scope: dict[str, str]  # language subtag -> macrolanguage | collection | special | private-use
    suppress_script: dict[str, str]
    description: dict[str, str]


@functools.lru_cache(maxsize=1)
def _registry() -> _Registry:
    from language_data.registry_parser import parse_registry

    scope: dict[str, str] = {}
    suppress: dict[str, str] = {}
    desc: dict[str, str] = {}
    for item in parse_registry():
        if item.get("Type") != "language" or "Subtag" not in item:
            continue
        sub = item["Subtag"]
        if "Scope" in item:
            scope[sub] = item["Scope"]
        if "Suppress-Script" in item:
            suppress[sub] = item["Suppress-Script"]
        if item.get("Description"):
            desc[sub] = item["Description"][0]
    return _Registry(scope, suppress, desc)


@functools.lru_cache(maxsize=1)
def _cldr_primary_scripts() -> dict[str, tuple[str, ...]]:
    """CLDR `languageData`: the primary scripts of each language (secondary entries ignored)."""
    import xml.etree.ElementTree as ET

    from language_data.util import data_filename

    out: dict[str, tuple[str, ...]] = {}
    root = ET.parse(data_filename("supplementalData.xml")).getroot()
    for el in root.iter("language"):
        if el.get("alt") == "secondary" or not el.get("scripts"):
            continue
        out[el.get("type", "")] = tuple(el.get("scripts", "").split())
    return out


def _default_script(language: str, territory: str | None = None) -> str | None:
    """The script a language is written in unless said otherwise; None where the libraries do not know."""
    from langcodes import Language
    from langcodes.data_dicts import LIKELY_SUBTAGS

    keys = ([f"{language}-{territory}"] if territory else []) + [language]
    for key in keys:
        if key in LIKELY_SUBTAGS:
            return Language.get(LIKELY_SUBTAGS[key], normalize=False).script
    reg = _registry()
    if language in reg.suppress_script:
        return reg.suppress_script[language]
    primary = _cldr_primary_scripts().get(language, ())
    if len(primary) == 1:
        return primary[0]
    # No fall-back to the macrolanguage's script: right for acm (ar: Arab) but wrong for azb (az: Latn).
    return None


def _is_default_script(script: str, default: str | None) -> bool:
    return default is None or script == default or script in _SCRIPT_PARTS.get(default, frozenset())


def _country_hint(raw: str) -> str:
    """For a 2-letter non-language that is a country code (``cz``, ``dk``), say so and name the main language."""
    from langcodes import Language
    from langcodes.data_dicts import LIKELY_SUBTAGS

    if len(raw) != 2 or not raw.isalpha() or f"und-{raw.upper()}" not in LIKELY_SUBTAGS:
        return ""
    guess = Language.get(f"und-{raw.upper()}").maximize()
    country = Language.get(f"und-{raw.upper()}").territory_name()
    return (
        f"; '{raw}' is the country code of {country}, not a language code — the main language there is "
        f"'{guess.language}' ({guess.language_name()}): pass that (or another language code) instead"
    )


def _name_hint(raw: str) -> str:
    """For a language *name* typed where a code was expected, suggest the code (names are not accepted: ambiguous)."""
    from langcodes import find

    if len(raw) < 4 or not raw.replace(" ", "").isalpha():
        return ""
    try:
        found = find(raw)
    except LookupError:
        return ""
    return f"; did you mean '{found.language}' ({found.language_name()})?"


def normalize_lang(code: str) -> str:
    """Canonical short code for a language code in any of the accepted spellings (module docstring has the rules).

    Accepts ISO 639-1/-2/-3 (``de``, ``ger``, ``deu``), FLORES-200 (``arb_Arab``), BCP-47 (``pt-BR``, ``zh_Hant``),
    XTD10's ``jp``; case-insensitive. Raises ``DataError`` naming the value when it is not one language.
    """
    if not isinstance(code, str):
        raise DataError(f"language code must be a string, got {type(code).__name__} {code!r}")
    return _normalize(code)


@functools.lru_cache(maxsize=8192)
def _normalize(code: str) -> str:
    from langcodes import Language, standardize_tag
    from langcodes.data_dicts import NORMALIZED_MACROLANGUAGES
    from langcodes.tag_parser import LanguageTagError

    raw = code.strip()
    if not raw:
        raise DataError(f"empty language code {code!r}")
    tag = raw.replace("_", "-")
    head, _, rest = tag.partition("-")
    head = DATASET_ALIASES.get(head.lower(), head)
    tag = f"{head}-{rest}" if rest else head
    try:
        lang = Language.get(standardize_tag(tag))
    except (LanguageTagError, ValueError) as exc:
        raise DataError(
            f"language code {code!r} is not a language tag ({exc}){_name_hint(raw)}; expected e.g. 'de', 'deu', "
            f"'arb_Arab' or 'pt-BR'"
        ) from None
    if lang.extensions or lang.private:
        raise DataError(f"language code {code!r} carries extensions ({lang}); pass the plain language code")
    sub = lang.language or "und"
    scope = _registry().scope.get(sub, "")
    if len(sub) == 3 and "qaa" <= sub <= "qtz":
        scope = "private-use"
    if scope == "special":
        raise DataError(
            f"language code {code!r} is the special code '{sub}' ({_registry().description.get(sub, '')}), "
            "not one language: name the actual language"
        )
    if scope == "collection":
        raise DataError(
            f"language code {code!r} names a group of languages ('{sub}': "
            f"{_registry().description.get(sub, '')}), so it is ambiguous: name one language of the group"
        )
    if scope != "private-use" and not lang.is_valid() and Language.make(language=sub).is_valid():
        raise DataError(
            f"language code {code!r}: '{sub}' is a language but the rest ({str(lang)[len(sub) + 1:]}) is not a "
            "valid script, region or variant"
        )
    if scope == "private-use":
        raise DataError(f"language code {code!r} is a private-use code (qaa-qtz): it names no known language")
    if not lang.is_valid():
        raise DataError(
            f"unknown language code {code!r}: not in the IANA language subtag registry"
            f"{_country_hint(head) or _name_hint(raw)}"
        )
    if len(sub) == 3 and sub in NORMALIZED_MACROLANGUAGES:
        sub = NORMALIZED_MACROLANGUAGES[sub]
    script = lang.script
    if script and _is_default_script(script, _default_script(sub, lang.territory)):
        script = None
    return Language.make(language=sub, script=script, territory=lang.territory, variants=lang.variants).to_tag()


def normalize_langs(codes: Iterable[str]) -> dict[str, str]:
    """Normalise many codes at once; two inputs that land on one language are an error (a dataset would merge them)."""
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    for code in codes:
        canon = normalize_lang(code)
        if canon in seen and seen[canon] != code:
            raise DataError(
                f"language codes {seen[canon]!r} and {code!r} both normalise to {canon!r}: rename one of them "
                "(e.g. give it an explicit script or region)"
            )
        seen[canon] = code
        out[code] = canon
    return out


_PRIVATE_SUFFIX = re.compile(r"[a-z0-9]{1,8}(-[a-z0-9]{1,8})*")


def _split_private(code: str) -> tuple[str, str]:
    """(language part, lower-case private-use suffix or "") of a caption-set key such as ``zh-x-f8k``."""
    raw = str(code).strip().replace("_", "-")
    head, sep, suffix = raw.lower().partition("-x-")
    if not sep:
        return raw, ""
    if not head or not _PRIVATE_SUFFIX.fullmatch(suffix):
        raise DataError(f"caption-set key {code!r}: expected <language>-x-<suffix> with 1-8 letter/digit subtags, "
                        "e.g. 'zh-x-f8k'")
    return raw[:len(head)], suffix


def caption_set_key(code: str) -> str:
    """Canonical key of a caption set: the language normalised, a private-use suffix kept (``ZH_x_F8K`` ->
    ``zh-x-f8k``), because two caption sets of one language (Multi30K ``en``, Flickr8k ``en-x-f8k``) must not merge."""
    lang, suffix = _split_private(code)
    canon = normalize_lang(lang)
    return f"{canon}-x-{suffix}" if suffix else canon


def typology_lang(code: str) -> str:
    """The language a caption set is written in, for typology: the private-use suffix dropped (``zh-x-f8k`` ->
    ``zh``), script and region kept (``zh-Hant``); ``normalize_lang`` itself refuses private-use tags."""
    return normalize_lang(_split_private(code)[0])


def base_lang(code: str) -> str:
    """The language subtag of the canonical code (``pt-BR`` -> ``pt``, ``zh-Hant`` -> ``zh``, ``zh-x-f8k`` -> ``zh``):
    what typology uses."""
    return typology_lang(code).split("-", 1)[0]


@dataclass(frozen=True)
class LanguageInfo:
    """Names and typology facts of one language (script/family None where the libraries do not know)."""

    code: str
    name: str
    script: str | None
    family: str | None


def language_info(code: str) -> LanguageInfo:
    """Name (CLDR English display name), script (as written in the code, else the language's default one) and
    family (Glottolog top level as shipped by urielplus, else URIEL's broadest lineage node).

    A caption-set key (``zh-x-f8k``) keeps its key as ``code`` and has the facts of its language.
    """
    from langcodes import Language

    tag, suffix = _split_private(code)
    canon = normalize_lang(tag)
    explicit = Language.get(tag).script if "-" in tag else None
    info = _language_info(canon, explicit)
    return replace(info, code=f"{canon}-x-{suffix}") if suffix else info


@functools.lru_cache(maxsize=4096)
def _language_info(canon: str, explicit_script: str | None) -> LanguageInfo:
    from langcodes import Language

    lang = Language.get(canon)
    script = lang.script or explicit_script or _default_script(lang.language or "", lang.territory)
    return LanguageInfo(code=canon, name=lang.display_name(), script=script, family=_family(canon))


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


def uriel_distance(a: str, b: str, kind: str = "genetic") -> float:
    """URIEL+ angular distance in [0, 1] between two languages (symmetric; 0 for a language with itself)."""
    _check_kind(kind)
    ca, cb = uriel_code(a, kind), uriel_code(b, kind)
    x, y = sorted((ca, cb))
    return _pair_distance(kind, x, y)


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


# --------------------------------------------------------------------------------------------------------------
# groups and gap correlation
# --------------------------------------------------------------------------------------------------------------

#: The seed paper's grouping (relative to English).
PAPER_GROUPS: dict[str, list[str]] = {
    "close": ["de", "nl", "it", "fr", "es", "pt"],
    "distant": ["ar", "ru", "zh", "ja", "ko", "tr", "hi"],
}

#: The project's default grouping: the paper's, plus Czech between. Czech is in neither paper list and URIEL does not
#: settle it: its genetic distance from English (0.91) is below French's (0.94), yet it is Slavic and syntactically
#: further from English (0.60) than any close language (at most 0.42).
DEFAULT_GROUPS: dict[str, list[str]] = {
    "close": list(PAPER_GROUPS["close"]),
    "between": ["cs"],
    "distant": list(PAPER_GROUPS["distant"]),
}

Group = Literal["close", "between", "distant", "unknown"]
GROUPS: tuple[Group, ...] = ("close", "between", "distant", "unknown")


def _check_overrides(overrides: Mapping[str, str]) -> dict[str, Group]:
    """Overrides keyed by canonical caption-set key, every group checked."""
    out: dict[str, Group] = {}
    for code, group in overrides.items():
        if group not in GROUPS:
            raise DataError(f"group override {code}={group!r}: the group must be one of {', '.join(GROUPS)}")
        key = caption_set_key(code)
        if key in out:
            raise DataError(f"group override {code}={group!r}: {key} is given twice")
        out[key] = cast(Group, group)
    return out


def parse_group_overrides(text: str) -> dict[str, Group]:
    """``"cs=close, pl=between"`` -> ``{"cs": "close", "pl": "between"}`` (codes canonical): a text field's overrides."""
    out: dict[str, Group] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, sep, group = part.partition("=")
        if not sep or not code.strip():
            raise DataError(f"group override {part!r}: write it as <language>=<group>, e.g. 'cs=close'")
        ((key, value),) = _check_overrides({code.strip(): group.strip()}).items()
        if key in out:
            raise DataError(f"group override {part!r}: {key} is given twice")
        out[key] = value
    return out


def group_languages(
    langs: Iterable[str], threshold: float | None = None, kind: str = "genetic", pivot: str = "en",
    overrides: Mapping[str, str] | None = None,
) -> dict[str, Group]:
    """close / between / distant / unknown per language, keyed by the codes as given.

    ``threshold=None``: the project's groups (``DEFAULT_GROUPS``: the paper's, plus Czech between), matched on the
    base language, so ``pt-BR`` is close and ``zh-x-f8k`` distant; anything else is ``unknown``. With a threshold:
    URIEL ``kind`` distance from the pivot ``<= threshold`` is close, above is distant, no URIEL data is unknown.
    The pivot's own language (``en``, ``en-x-f8k``) is ``unknown`` either way: it is what the others are measured
    against. ``overrides`` (code -> group) win over both rules, matched on the caption set (``zh-x-f8k``), then its
    language (``zh-Hant``), then the base language (``zh``).
    """
    langs = list(langs)
    fixed = _check_overrides(overrides or {})
    if threshold is None:
        lookup: dict[str, Group] = {lang: cast(Group, grp) for grp, members in DEFAULT_GROUPS.items()
                                    for lang in members}

        def rule(lang: str) -> Group:
            return lookup.get(base_lang(lang), "unknown")
    else:
        try:
            t = float(threshold)
        except (TypeError, ValueError):
            raise DataError(f"distance threshold must be a number in [0, 1], got {threshold!r}") from None
        if not 0.0 <= t <= 1.0:
            raise DataError(f"distance threshold must be in [0, 1] (URIEL distances are), got {threshold!r}")
        _check_kind(kind)

        def rule(lang: str) -> Group:
            try:
                return "close" if uriel_distance(pivot, lang, kind) <= t else "distant"
            except DataError:
                return "unknown"

    pivot_base = base_lang(pivot)
    out: dict[str, Group] = {}
    for lang in langs:
        keys = (caption_set_key(lang), typology_lang(lang), base_lang(lang))
        override = next((fixed[key] for key in keys if key in fixed), None)
        if override is not None:
            out[lang] = override
        elif keys[2] == pivot_base:
            out[lang] = "unknown"
        else:
            out[lang] = rule(lang)
    return out


@dataclass(frozen=True)
class CorrelationResult:
    """Values (gaps, pair scores) vs typological distance; NaN numbers with a note where they would mean nothing.

    ``languages`` names the items used (languages, or pair labels such as ``de–fr``); the CIs are seeded percentile
    bootstrap intervals over those items.
    """

    n: int
    pearson_r: float
    pearson_p: float
    spearman_rho: float
    spearman_p: float
    note: str
    kind: str = "genetic"
    languages: tuple[str, ...] = ()
    pearson_ci: tuple[float, float] = (math.nan, math.nan)
    spearman_ci: tuple[float, float] = (math.nan, math.nan)


#: Below this many items (languages, pairs) p-values from a correlation are flagged as indicative only.
FEW_LANGUAGES = 10


def _bootstrap_correlations(x: np.ndarray, y: np.ndarray, seed: int, n_resamples: int, level: float
                            ) -> tuple[tuple[float, float], tuple[float, float], int]:
    """Percentile CIs of Pearson r and Spearman rho over items resampled with replacement, and how many resamples
    were skipped because one side came out constant (no correlation is defined there)."""
    from scipy.stats import rankdata

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(int(n_resamples), len(x)))
    bx, by = x[idx], y[idx]
    ok = (np.ptp(bx, axis=1) > 0) & (np.ptp(by, axis=1) > 0)
    bx, by = bx[ok], by[ok]
    tail = 100.0 * (1.0 - level) / 2.0

    def interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        if not len(a):
            return math.nan, math.nan
        a = a - a.mean(axis=1, keepdims=True)
        b = b - b.mean(axis=1, keepdims=True)
        r = np.clip((a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1)), -1.0, 1.0)
        low, high = np.percentile(r, [tail, 100.0 - tail])
        return float(low), float(high)

    return interval(bx, by), interval(rankdata(bx, axis=1), rankdata(by, axis=1)), int((~ok).sum())


def correlate(
    distances: Iterable[float], values: Iterable[float], items: Iterable[str], *, kind: str = "genetic",
    notes: Iterable[str] = (), unit: str = "language", value: str = "gap", seed: int = 0, n_resamples: int = 2000,
    level: float = 0.95,
) -> CorrelationResult:
    """Pearson and Spearman (two-sided p) of ``values`` with ``distances``, with bootstrap CIs over the items.

    One implementation for per-language gaps (``gap_correlation``) and language pairs (``csr_core.pairs``). Fewer
    than 3 items, or a constant side, gives NaN and a note; fewer than ``FEW_LANGUAGES`` flags p-values as indicative.
    ``unit`` / ``value`` only word the notes ("language" / "gap", "pair" / "score").
    """
    from scipy import stats

    if not 0.0 < level < 1.0:
        raise DataError(f"level must be in (0, 1), got {level}")
    xs = np.asarray(list(distances), dtype=float)
    ys = np.asarray(list(values), dtype=float)
    used = tuple(items)
    if not len(xs) == len(ys) == len(used):
        raise DataError(f"correlate: {len(xs)} distances, {len(ys)} values and {len(used)} items; need one of each")
    if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        raise DataError("correlate: distances and values must be finite (leave items without one out, with a note)")
    notes = list(notes)
    n = len(used)
    nan = math.nan
    if n < 3:
        notes.insert(0, f"only {n} {unit}(s) with a {value} and a distance: a correlation needs at least 3")
        return CorrelationResult(n, nan, nan, nan, nan, "; ".join(notes), kind, used)
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        which = "distances" if np.ptp(xs) == 0 else f"{value}s"
        notes.insert(0, f"all {which} are equal: correlation undefined")
        return CorrelationResult(n, nan, nan, nan, nan, "; ".join(notes), kind, used)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pr = stats.pearsonr(xs, ys)
        sr = stats.spearmanr(xs, ys)
    pearson_ci, spearman_ci, skipped = _bootstrap_correlations(xs, ys, seed, n_resamples, level)
    if n < FEW_LANGUAGES:
        notes.insert(0, f"only {n} {unit}s: treat p-values as indicative")
    notes.append(f"{100 * level:g}% CIs: percentile bootstrap over {unit}s ({n_resamples} resamples, seed {seed}"
                 + (f"; {skipped} with a constant side skipped)" if skipped else ")"))
    return CorrelationResult(n, float(pr.statistic), float(pr.pvalue), float(sr.statistic), float(sr.pvalue),
                             "; ".join(notes), kind, used, pearson_ci, spearman_ci)


def gap_correlation(
    gaps: Mapping[str, float] | pd.Series, kind: str = "genetic", pivot: str = "en", *, seed: int = 0,
    n_resamples: int = 2000,
) -> CorrelationResult:
    """Pearson and Spearman correlation (p-values, bootstrap CIs) of per-language gaps with URIEL distance from the
    pivot.

    Left out and named in the note: the pivot itself (gap and distance 0 by construction), other caption sets in the
    pivot's language (``en-x-f8k``: distance 0 by construction, so its gap says something about captions, not
    typology), and languages without a finite gap or URIEL data. A caption set of another language (``zh-x-f8k``)
    counts with its language's distance. Fewer than 3 languages, or a constant input, gives NaN and a note.
    """
    _check_kind(kind)
    canon_pivot = caption_set_key(pivot)
    pivot_lang = base_lang(pivot)
    seen: dict[str, str] = {}
    xs: list[float] = []
    ys: list[float] = []
    used: list[str] = []
    dropped: list[str] = []
    for raw, gap in list(gaps.items()):
        lang = caption_set_key(str(raw))
        if lang in seen:
            raise DataError(f"gaps has two entries for {lang!r}: {seen[lang]!r} and {raw!r}")
        seen[lang] = str(raw)
        if lang == canon_pivot:
            continue
        try:
            g = float(gap)
        except (TypeError, ValueError):
            raise DataError(f"gap for {raw!r} is not a number: {gap!r}") from None
        if base_lang(lang) == pivot_lang:
            dropped.append(f"{lang} (the pivot's language)")
            continue
        if not math.isfinite(g):
            dropped.append(f"{lang} (no gap)")
            continue
        try:
            d = uriel_distance(canon_pivot, lang, kind)
        except DataError:
            dropped.append(f"{lang} (no URIEL {kind} data)")
            continue
        xs.append(d)
        ys.append(g)
        used.append(lang)
    notes = [f"{kind} distance from {canon_pivot} ({uriel_source()})"]
    if dropped:
        notes.append("left out: " + ", ".join(dropped))
    return correlate(xs, ys, used, kind=kind, notes=notes, seed=seed, n_resamples=n_resamples)


def clear_caches() -> None:
    """Forget every in-process table (tests; a dashboard reload after upgrading the libraries)."""
    with _LOCK:
        for fn in (_registry, _cldr_primary_scripts, _normalize, _language_info, _load_uriel, _uriel_index,
                   _known_counts, _glottolog, _uriel_top_family):
            fn.cache_clear()
        _disk_cache().clear_memory()
