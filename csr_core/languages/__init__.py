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

# One module per concern: `codes` (normalisation, caption-set keys, names, scripts), `uriel` (distances, families),
# `groups` (close/between/distant, gap correlation). Callers import from `csr_core.languages`.
from csr_core.languages.codes import (
    DATASET_ALIASES, LanguageInfo, base_lang, caption_set_key, language_info, normalize_lang, normalize_langs,
    typology_lang)
from csr_core.languages.uriel import (
    ALL_KINDS, DISTANCE_KINDS, DistanceKind, distance_table, uriel_code, uriel_distance, uriel_source)
from csr_core.languages.groups import (
    CorrelationResult, DEFAULT_GROUPS, FEW_LANGUAGES, GROUPS, Group, PAPER_GROUPS, correlate, display_order,
    gap_correlation,
    group_languages, parse_group_overrides)
from csr_core.languages.codes import (  # noqa: F401 - cleared by clear_caches
    _cldr_primary_scripts, _language_info, _normalize, _registry)
from csr_core.languages.uriel import (  # noqa: F401 - cleared by clear_caches
    _LOCK, _disk_cache, _glottolog, _known_counts, _load_uriel, _shipped, _uriel_index, _uriel_top_family)


def clear_caches() -> None:
    """Forget every in-process table (tests; a dashboard reload after upgrading the libraries)."""
    with _LOCK:
        for fn in (_registry, _cldr_primary_scripts, _normalize, _language_info, _load_uriel, _uriel_index,
                   _known_counts, _glottolog, _uriel_top_family, _shipped):
            fn.cache_clear()
        _disk_cache().clear_memory()


__all__ = [
    "DATASET_ALIASES",
    "LanguageInfo",
    "base_lang",
    "caption_set_key",
    "language_info",
    "normalize_lang",
    "normalize_langs",
    "typology_lang",
    "ALL_KINDS",
    "DISTANCE_KINDS",
    "DistanceKind",
    "display_order",
    "distance_table",
    "uriel_code",
    "uriel_distance",
    "uriel_source",
    "CorrelationResult",
    "DEFAULT_GROUPS",
    "FEW_LANGUAGES",
    "GROUPS",
    "Group",
    "PAPER_GROUPS",
    "correlate",
    "gap_correlation",
    "group_languages",
    "parse_group_overrides",
    "clear_caches",
]
