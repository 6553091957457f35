"""Training arms: what caption pool each training photo gets. Arms differ ONLY in these pools.

Every arm trains on the same photos, steps, batch size and seeds; per step each photo in the batch draws one caption
from its pool. Arm names (also the `train_arm` column and the `csr-mini:<arm>` model name):

    en                       the 5 Flickr8k English captions of the photo
    blcs-<x>                 BL-CS: k code-switched variants (EN -> x, MUSE, p) of each English caption
    mlcs-<x>-<y>[-...]       ML-CS over the set {x, y, ...}: per word a random language of the set (the paper's rule)
    ...-p25 / -p75 / -p100   the same arm at p = 0.25 / 0.75 / 1.0 (default p = 0.5 carries no suffix)
    ...-k2                   k = 2 switched variants per caption instead of the trainer's default (an ablation)
    translate-train          the English captions + the human Multi30K de/fr/cs captions of the photo
    dict-<x>-<y>[-...]       word-by-word dictionary translation (p = 1, first translation, longest match); variant v
                             of caption j goes into language langs[(j + v) % len(langs)]

Code-switched pools do not include the original English caption: like Litschko et al., the whole training text is
switched at rate p (at p = 0.5 about half the words stay English). Variant v of a caption uses CodeSwitcher seed v
(fixed, independent of the training seed), so the pools are the same for every training seed and their tower
features are computed once; `k=1` pools are a prefix of `k=2` pools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Sequence

if TYPE_CHECKING:
    from csr_core.lexicon import Lexicon

from csr_core.errors import CSRError

DEFAULT_P = 0.5
CS_LANGS = ("de", "fr", "cs")
#: The arms of the main grid, in report order.
MAIN_ARMS: tuple[str, ...] = (
    "en", "blcs-de", "blcs-fr", "blcs-cs", "mlcs-de-fr-cs", "mlcs-de-fr", "translate-train", "dict-de-fr-cs",
)
#: The ML-CS p sweep (p = 0.5 is `mlcs-de-fr-cs`, p = 0 is `en`).
SWEEP_ARMS: tuple[str, ...] = ("mlcs-de-fr-cs-p25", "mlcs-de-fr-cs-p75", "mlcs-de-fr-cs-p100")
ALL_ARMS: tuple[str, ...] = MAIN_ARMS + SWEEP_ARMS

_LANG = r"[a-z]{2,3}"
_ARM_RE = re.compile(
    rf"(?P<kind>blcs|mlcs|dict)-(?P<langs>{_LANG}(?:-{_LANG})*?)(?:-p(?P<p>\d{{1,3}}))?(?:-k(?P<k>[1-9]))?"
)


@dataclass(frozen=True)
class ArmSpec:
    """A parsed arm: kind (en | cs | translate | dict), CS mode, target languages and p."""

    name: str
    kind: str
    mode: str = ""
    langs: tuple[str, ...] = ()
    p: float = 0.0
    variants: int | None = None  # fixed by the arm name (-kN); None: the trainer's default
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def describe(self) -> str:
        if self.kind == "en":
            return "English captions only (Flickr8k, 5 per photo)"
        if self.kind == "translate":
            return "English captions + human Multi30K de/fr/cs translations of the photo's task1 caption"
        if self.kind == "dict":
            return f"word-by-word dictionary translation into {', '.join(self.langs)} (p = 1, first translation)"
        label = "BL-CS" if self.mode == "bl" else "ML-CS"
        return f"{label} of the English captions into {{{', '.join(self.langs)}}}, p = {self.p:g}"


def parse_arm(name: str) -> ArmSpec:
    """`mlcs-de-fr-p75` -> ArmSpec(kind="cs", mode="ml", langs=("de","fr"), p=0.75); errors list the grammar."""
    name = str(name).strip()
    if name == "en":
        return ArmSpec(name, "en")
    if name == "translate-train":
        return ArmSpec(name, "translate", langs=CS_LANGS)
    m = _ARM_RE.fullmatch(name)
    if not m:
        raise CSRError(
            f"unknown training arm {name!r}; use en, translate-train, blcs-<lang>, mlcs-<lang>-<lang>[...], "
            f"dict-<lang>[-<lang>...], optionally with -p25/-p75/-p100 (known: {', '.join(ALL_ARMS)})"
        )
    langs = tuple(m["langs"].split("-"))
    if len(set(langs)) != len(langs):
        raise CSRError(f"training arm {name!r} repeats a language")
    kind = m["kind"]
    k = int(m["k"]) if m["k"] else None
    if kind == "dict":
        if m["p"]:
            raise CSRError(f"training arm {name!r}: dictionary translation always uses p = 1 (drop -p{m['p']})")
        return ArmSpec(name, "dict", mode="dictionary", langs=langs, p=1.0, variants=k)
    p = int(m["p"]) / 100 if m["p"] else DEFAULT_P
    if not 0.0 < p <= 1.0:
        raise CSRError(f"training arm {name!r}: p must be in (0, 1], got {p:g}")
    if kind == "blcs" and len(langs) != 1:
        raise CSRError(f"training arm {name!r}: BL-CS switches into exactly one language (use mlcs-... for several)")
    if kind == "mlcs" and len(langs) < 2:
        raise CSRError(f"training arm {name!r}: ML-CS needs at least two languages (use blcs-{langs[0]})")
    return ArmSpec(name, "cs", mode="bl" if kind == "blcs" else "ml", langs=langs, p=p, variants=k)


def arm_languages(arm: str | ArmSpec) -> tuple[str, ...]:
    """The lexicon languages an arm needs (empty for en / translate-train)."""
    spec = parse_arm(arm) if isinstance(arm, str) else arm
    return spec.langs if spec.kind in ("cs", "dict") else ()


def build_pools(
    arm: str | ArmSpec,
    english: Sequence[Sequence[str]],
    translations: Mapping[str, Sequence[Sequence[str]]] | None = None,
    lexicons: Mapping[str, Lexicon] | None = None,
    variants: int = 2,
) -> list[list[str]]:
    """Caption pool per training photo for `arm`.

    `english[i]`: the photo's English captions; `translations[lang][i]`: its human captions in `lang` (translate-
    train only); `lexicons[lang]`: a `csr_core.lexicon.Lexicon` (CS and dict arms); `variants`: k switched variants
    per English caption. Pools keep the order caption j, variant v (so `k=1` pools are a prefix of `k=2` pools).
    """
    spec = parse_arm(arm) if isinstance(arm, str) else arm
    variants = spec.variants or variants
    if variants < 1:
        raise CSRError(f"variants (k) must be >= 1, got {variants}")
    english_lists: list[list[str]] = [list(caps) for caps in english]
    for i, caps in enumerate(english_lists):
        if not caps:
            raise CSRError(f"training photo #{i} has no English caption")
    if spec.kind == "en":
        return english_lists
    if spec.kind == "translate":
        translations = translations or {}
        missing = [lang for lang in spec.langs if lang not in translations]
        if missing:
            raise CSRError(f"translate-train needs human captions in {', '.join(missing)}")
        with_translations = []
        for i, caps in enumerate(english_lists):
            extra = [t for lang in spec.langs for t in translations[lang][i]]
            with_translations.append(caps + extra)
        return with_translations
    from csr_core.codeswitch import CodeSwitcher

    lexicons = lexicons or {}
    missing = [lang for lang in spec.langs if lang not in lexicons]
    if missing:
        raise CSRError(f"arm {spec.name} needs lexicons for {', '.join(missing)}")
    flat = [(i, j, c) for i, caps in enumerate(english_lists) for j, c in enumerate(caps)]
    texts = [c for _, _, c in flat]
    switched: dict[tuple[int, str], list[str]] = {}
    if spec.kind == "dict":
        for lang in spec.langs:
            sw = CodeSwitcher({lang: lexicons[lang]}, mode="dictionary", langs=[lang])
            switched[(0, lang)] = [s.text for s in sw.switch_batch(texts)]
    else:
        for v in range(variants):
            sw = CodeSwitcher({lang: lexicons[lang] for lang in spec.langs}, mode=spec.mode, p=spec.p, seed=v,
                              langs=list(spec.langs))
            switched[(v, "")] = [s.text for s in sw.switch_batch(texts)]
    pools: list[list[str]] = [[] for _ in english_lists]
    n_var = min(variants, len(spec.langs)) if spec.kind == "dict" else variants  # dict: no duplicate variants
    for row, (i, j, _) in enumerate(flat):
        for v in range(n_var):
            if spec.kind == "dict":
                lang = spec.langs[(j + v) % len(spec.langs)]
                pools[i].append(switched[(0, lang)][row])
            else:
                pools[i].append(switched[(v, "")][row])
    return pools
