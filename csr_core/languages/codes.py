"""Canonical language codes, caption-set keys, names and scripts (langcodes + language-data: IANA, CLDR)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace


from csr_core.errors import DataError

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
    from csr_core.languages.uriel import _family  # families come from URIEL's Glottolog table, which needs codes

    return LanguageInfo(code=canon, name=lang.display_name(), script=script, family=_family(canon))
