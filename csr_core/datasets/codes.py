"""Language codes of caption files: FLORES-200 codes and the project's one normalisation rule."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from csr_core.errors import DataError

_FLORES_RE = re.compile(r"^[a-z]{3}_[A-Z][a-z]{3}$")


def _default_script(tag: str) -> str:
    import langcodes

    return langcodes.Language.get(tag).maximize().script or ""


def _flores_tag(code: str, macro: bool = True, keep_script: bool = False) -> str:
    """BCP-47 tag of one FLORES-200 code: `deu_Latn` → `de`; with `keep_script`, the script stays unless it is the
    language's default one (`zho_Hant` → `zh-Hant`, `zho_Hans` → `zh`)."""
    import langcodes

    lang, script = code.split("_")
    base = langcodes.standardize_tag(lang, macro=macro)
    if not keep_script:
        return base
    default = _default_script(base)
    if script == default or {script, default} == {"Hang", "Kore"}:
        return base
    loc = langcodes.Language.get(base)
    return f"{loc.language}-{script}" + (f"-{loc.territory}" if loc.territory else "")


def _unique_tags(codes: list[str], macro: bool) -> dict[str, str]:
    """Tags without script, adding the script only where one language comes in several scripts."""
    plain = {c: _flores_tag(c, macro) for c in codes}
    groups: dict[str, list[str]] = {}
    for c, tag in plain.items():
        groups.setdefault(tag, []).append(c)
    out = dict(plain)
    for tag, members in groups.items():
        if len(members) > 1:
            scripted = {c: _flores_tag(c, macro, keep_script=True) for c in members}
            if len(set(scripted.values())) < len(members):  # no known default script: name every script
                scripted = {c: f"{tag}-{c.split('_')[1]}" for c in members}
            out.update(scripted)
    return out


def flores_tags(codes: Iterable[str]) -> dict[str, str]:
    """Map FLORES-200 codes to short BCP-47 tags, unambiguously within the given set.

    The script is dropped unless the same language comes in two scripts (`zho_Hans` → `zh`, `zho_Hant` →
    `zh-Hant`); macrolanguages are used where that stays unique (`arb_Arab` → `ar`, `zsm_Latn` → `ms`); codes whose
    macrolanguage would collide (`aka_Latn`, `twi_Latn` → `ak`) keep their own language (`ak`, `tw`), and as a last
    resort the FLORES code itself.
    """
    codes = list(dict.fromkeys(codes))
    out = _unique_tags(codes, macro=True)
    individual = _unique_tags(codes, macro=False)
    fallbacks: tuple[Callable[[str], str], ...] = (lambda c: individual.get(c, c), lambda c: c)
    for fallback in fallbacks:
        counts: dict[str, int] = {}
        for tag in out.values():
            counts[tag] = counts.get(tag, 0) + 1
        for c in [c for c, tag in out.items() if counts[tag] > 1]:
            out[c] = fallback(c)
    return out


def normalize_lang(code: str, where: str = "") -> str:
    """Normalise one language code (`EN` → `en`, `jp` → `ja`, `deu_Latn` → `de`) by the project's one rule
    (`csr_core.languages.normalize_lang`); caption-set keys with a private-use suffix (`en-x-f8k`) keep it.

    Raises DataError prefixed by `where` (e.g. a file and line) for codes that name no language.
    """
    from csr_core.languages import normalize_lang as canonical

    prefix = f"{where}: " if where else ""
    raw = str(code).strip()
    base, private, suffix = raw.replace("_", "-").partition("-x-")
    try:
        tag = canonical(base)
    except DataError as exc:
        raise DataError(f"{prefix}{exc}") from None
    return f"{tag}-x-{suffix.lower()}" if private else tag


