"""Training arms: what caption pool each training photo gets. Arms differ ONLY in these pools.

Every arm trains on the same photos, steps, batch size and seeds; per step each photo in the batch draws one caption
from its pool. Arm names (also the `train_arm` column and the `csr-mini:<arm>` model name):

    en                       the 5 Flickr8k English captions of the photo
    blcs-<x>                 BL-CS: code-switched versions (EN -> x, MUSE, p) of each English caption
    mlcs-<x>-<y>[-...]       ML-CS over the set {x, y, ...}: per word a random language of the set (the paper's rule)
    mix-<cs arm>             EN + CS mixed: the English captions AND their switched versions (Litschko et al.'s pool)
    noise-<cs arm>           noise control: the same switched positions and languages, each replacement a random
                             word of that language's lexicon (switching without meaning)
    ind-<cs arm>             the same switching with lexicons INDUCED by 1-NN over multilingual-e5-small word
                             embeddings (Litschko et al.'s kind of lexicon; `csr_core.lexicon_induction`)
    ...-p25 / -p75 / -p100   the same arm at p = 0.25 / 0.75 / 1.0 (default p = 0.5 carries no suffix)
    ...-k2                   k = 2 switched variants per caption instead of the trainer's default
    translate-train          the English captions + the human Multi30K de/fr/cs captions of the photo (unequal
                             exposure: 5 English, 1 per language; the first experiment's arm)
    tt-<x>[-<y>...]          translate-train with EQUAL exposure: per language as many slots as English captions,
                             filled by cycling the photo's human captions in that language
    ttmt-<x>[-<y>...]        the same with machine translations (`<x>-x-mt`: Baidu zh for Flickr8k-CN)
    dict-<x>-<y>[-...]       word-by-word dictionary translation (p = 1, first translation, longest match); variant v
                             of caption j goes into language langs[(j + v) % len(langs)]

Code-switched pools do not include the original English caption (except `mix-`): like Litschko et al., the whole
training text is switched at rate p (at p = 0.5 about half the words stay English).

Switching draws: variant v of a training run with code-switch seed s uses CodeSwitcher seed `1000 * s + v`, so seeds
vary the switched text as well as the initialisation. `build_pool_views` returns one caption pool per variant: the
trainer's dynamic switching (the default) shows each epoch one variant, cycling (re-switched every epoch up to a bank
of k variants, whose tower features are computed once); static switching (`build_pools`) puts all k variants into
one pool, as the first experiment did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    from csr_core.lexicon import Lexicon

from csr_core.errors import CSRError

DEFAULT_P = 0.5
CS_LANGS = ("de", "fr", "cs")
#: The first experiment's grid (the shipped heads), in report order.
MAIN_ARMS: tuple[str, ...] = (
    "en", "blcs-de", "blcs-fr", "blcs-cs", "mlcs-de-fr-cs", "mlcs-de-fr", "translate-train", "dict-de-fr-cs",
)
#: The ML-CS p sweep (p = 0.5 is `mlcs-de-fr-cs`, p = 0 is `en`).
SWEEP_ARMS: tuple[str, ...] = ("mlcs-de-fr-cs-p25", "mlcs-de-fr-cs-p75", "mlcs-de-fr-cs-p100")
V1_ARMS: tuple[str, ...] = MAIN_ARMS + SWEEP_ARMS
#: Close and distant target languages of the second experiment (Litschko et al.'s split; cs is evaluated, between).
CLOSE_LANGS: tuple[str, ...] = ("de", "fr", "pt")
DISTANT_LANGS: tuple[str, ...] = ("zh", "ar")
_ALL5 = "-".join(CLOSE_LANGS + DISTANT_LANGS)
#: The second experiment's arms (close vs distant), in report order.
DESIGN_ARMS: tuple[str, ...] = (
    "en",
    *(f"blcs-{x}" for x in CLOSE_LANGS + DISTANT_LANGS),
    f"mlcs-{'-'.join(CLOSE_LANGS)}",
    f"mlcs-{'-'.join(DISTANT_LANGS)}",
    f"mlcs-{_ALL5}",
    f"mix-mlcs-{_ALL5}",
    f"noise-mlcs-{_ALL5}",
    f"tt-{_ALL5}",
    f"ind-mlcs-{_ALL5}",
    "tt-zh",  # human Chinese (native Flickr8k-CN captions) ...
    "ttmt-zh",  # ... against machine-translated Chinese (Baidu) at the same exposure
)
ALL_ARMS: tuple[str, ...] = tuple(dict.fromkeys(V1_ARMS + DESIGN_ARMS))

_LANG = r"[a-z]{2,3}"
_ARM_RE = re.compile(
    rf"(?P<prefix>mix-|noise-|ind-)?(?P<kind>blcs|mlcs|dict|tt|ttmt)-(?P<langs>{_LANG}(?:-{_LANG})*?)"
    rf"(?:-p(?P<p>\d{{1,3}}))?(?:-k(?P<k>[1-9]))?"
)


@dataclass(frozen=True)
class ArmSpec:
    """A parsed arm: kind (en | cs | translate | dict), CS mode, target languages, p and the pool modifiers."""

    name: str
    kind: str
    mode: str = ""
    langs: tuple[str, ...] = ()
    p: float = 0.0
    variants: int | None = None  # fixed by the arm name (-kN); None: the trainer's default
    with_english: bool = False  # mix-: the English captions stay in the pool beside their switched versions
    noise: bool = False  # noise-: switched positions get random target-language words
    induced: bool = False  # ind-: lexicons induced by 1-NN over e5 word embeddings instead of MUSE
    machine: bool = False  # ttmt-: machine translations instead of human captions
    equal_exposure: bool = False  # tt-/ttmt-: each language as many slots as English

    @property
    def switched(self) -> bool:
        """True when the pool holds code-switched text (variants and a code-switch seed apply)."""
        return self.kind == "cs"

    @property
    def describe(self) -> str:
        if self.kind == "en":
            return "English captions only (Flickr8k, 5 per photo)"
        if self.kind == "translate":
            if self.equal_exposure:
                source = "machine" if self.machine else "human"
                return (f"English captions + {source} captions in {', '.join(self.langs)}, equal exposure (as many "
                        "slots per language as English captions)")
            return "English captions + human Multi30K de/fr/cs translations of the photo's task1 caption"
        if self.kind == "dict":
            return f"word-by-word dictionary translation into {', '.join(self.langs)} (p = 1, first translation)"
        label = "BL-CS" if self.mode == "bl" else "ML-CS"
        text = f"{label} of the English captions into {{{', '.join(self.langs)}}}, p = {self.p:g}"
        if self.induced:
            text = f"{text}, lexicons induced by 1-NN over multilingual-e5-small word embeddings"
        if self.noise:
            text = f"noise control for {text}: the same positions replaced by random words of the target lexicon"
        if self.with_english:
            text = f"EN + CS mixed: the English captions and {text}"
        return text

    def caption_lang(self, lang: str) -> str:
        """The caption set a translate arm reads for `lang` (`zh-x-mt` for machine zh)."""
        return f"{lang}-x-mt" if self.machine else lang


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
            f"mix-<cs arm>, noise-<cs arm>, ind-<cs arm>, tt-<lang>[-<lang>...], ttmt-<lang>, dict-<lang>[-<lang>...], "
            f"optionally with -p25/-p75/-p100 (known: {', '.join(ALL_ARMS)})"
        )
    langs = tuple(m["langs"].split("-"))
    if len(set(langs)) != len(langs):
        raise CSRError(f"training arm {name!r} repeats a language")
    kind = m["kind"]
    k = int(m["k"]) if m["k"] else None
    prefix = m["prefix"] or ""
    if prefix and kind not in ("blcs", "mlcs"):
        raise CSRError(f"training arm {name!r}: {prefix} applies to a code-switched arm (blcs-/mlcs-) only")
    if kind in ("tt", "ttmt"):
        if m["p"] or k:
            raise CSRError(f"training arm {name!r}: translate-train arms take no -p or -k suffix")
        if "en" in langs:
            raise CSRError(f"training arm {name!r}: English is always in the pool; list the other languages")
        return ArmSpec(name, "translate", langs=langs, machine=kind == "ttmt", equal_exposure=True)
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
    return ArmSpec(name, "cs", mode="bl" if kind == "blcs" else "ml", langs=langs, p=p, variants=k,
                   with_english=prefix == "mix-", noise=prefix == "noise-", induced=prefix == "ind-")


def arm_languages(arm: str | ArmSpec) -> tuple[str, ...]:
    """The lexicon languages an arm needs (empty for en / translate-train)."""
    spec = parse_arm(arm) if isinstance(arm, str) else arm
    return spec.langs if spec.kind in ("cs", "dict") else ()


def cs_switch_seed(cs_seed: int, variant: int) -> int:
    """The CodeSwitcher seed of variant `variant` in a run with code-switch seed `cs_seed` (seed 0: 0, 1, 2 ...)."""
    if not 0 <= variant < 1000:
        raise CSRError(f"variant index must be in [0, 1000), got {variant}")
    if cs_seed < 0:
        raise CSRError(f"code-switch seed must be >= 0, got {cs_seed}")
    return 1000 * int(cs_seed) + int(variant)


def _checked_english(english: Sequence[Sequence[str]]) -> list[list[str]]:
    english_lists: list[list[str]] = [list(caps) for caps in english]
    for i, caps in enumerate(english_lists):
        if not caps:
            raise CSRError(f"training photo #{i} has no English caption")
    return english_lists


def _translation_pools(spec: ArmSpec, english_lists: list[list[str]],
                       translations: Mapping[str, Sequence[Sequence[str]]] | None) -> list[list[str]]:
    translations = translations or {}
    wanted = [spec.caption_lang(lang) for lang in spec.langs]
    missing = [lang for lang in wanted if lang not in translations]
    if missing:
        raise CSRError(f"{spec.name} needs captions in {', '.join(missing)}")
    pools = []
    for i, caps in enumerate(english_lists):
        pool = list(caps)
        for lang in wanted:
            found = list(translations[lang][i])
            if spec.equal_exposure:
                # as many slots as English captions, cycling the photo's captions (none: the language sits out)
                pool += [found[s % len(found)] for s in range(len(caps))] if found else []
            else:
                pool += found
        pools.append(pool)
    return pools


def _noise_texts(switched: Sequence, lexicons: Mapping[str, Lexicon], rng: np.random.Generator) -> list[str]:
    """Each replacement of each switched caption becomes a random word of its language's lexicon (case kept)."""
    from csr_core.tokenize import apply_case, case_class

    vocab = {lang: lex.target_words() for lang, lex in lexicons.items()}
    out = []
    for result in switched:
        spans = result.spans
        if not spans:
            out.append(result.text)
            continue
        text, pieces, last = result.text, [], 0
        for span in spans:
            words = vocab[span.lang]
            word = apply_case(words[int(rng.integers(len(words)))], case_class(span.source))
            pieces += [text[last:span.out_start], word]
            last = span.out_end
        out.append("".join(pieces) + text[last:])
    return out


def build_pool_views(
    arm: str | ArmSpec,
    english: Sequence[Sequence[str]],
    translations: Mapping[str, Sequence[Sequence[str]]] | None = None,
    lexicons: Mapping[str, Lexicon] | None = None,
    variants: int = 1,
    cs_seed: int = 0,
) -> list[list[list[str]]]:
    """Caption pools per training photo, one set per switched variant: `views[v][i]` is photo i's pool in variant v.

    `english[i]`: the photo's English captions; `translations[lang][i]`: its human (or `<lang>-x-mt` machine)
    captions (translate arms); `lexicons[lang]`: a `csr_core.lexicon.Lexicon` (CS and dict arms); `variants`: k
    switched variants (arms without switching have one view); `cs_seed`: varies the switching draws.
    """
    spec = parse_arm(arm) if isinstance(arm, str) else arm
    variants = spec.variants or variants
    if variants < 1:
        raise CSRError(f"variants (k) must be >= 1, got {variants}")
    english_lists = _checked_english(english)
    if spec.kind == "en":
        return [english_lists]
    if spec.kind == "translate":
        return [_translation_pools(spec, english_lists, translations)]
    from csr_core.codeswitch import CodeSwitcher

    lexicons = lexicons or {}
    missing = [lang for lang in spec.langs if lang not in lexicons]
    if missing:
        raise CSRError(f"arm {spec.name} needs lexicons for {', '.join(missing)}")
    flat = [(i, j) for i, caps in enumerate(english_lists) for j in range(len(caps))]
    texts = [english_lists[i][j] for i, j in flat]
    if spec.kind == "dict":
        by_lang = {lang: [s.text for s in CodeSwitcher({lang: lexicons[lang]}, mode="dictionary", langs=[lang])
                          .switch_batch(texts)] for lang in spec.langs}
        n_var = min(variants, len(spec.langs))  # no duplicate variants
        pools: list[list[str]] = [[] for _ in english_lists]
        for row, (i, j) in enumerate(flat):
            pools[i] += [by_lang[spec.langs[(j + v) % len(spec.langs)]][row] for v in range(n_var)]
        return [pools]
    target = {lang: lexicons[lang] for lang in spec.langs}
    views = []
    for v in range(variants):
        seed = cs_switch_seed(cs_seed, v)
        switched = CodeSwitcher(target, mode=spec.mode, p=spec.p, seed=seed, langs=list(spec.langs)).switch_batch(texts)
        out = (_noise_texts(switched, target, np.random.default_rng([seed, 104729])) if spec.noise
               else [s.text for s in switched])
        view: list[list[str]] = [list(caps) if spec.with_english else [] for caps in english_lists]
        for row, (i, _) in enumerate(flat):
            view[i].append(out[row])
        views.append(view)
    return views


def flatten_views(arm: str | ArmSpec, views: list[list[list[str]]]) -> list[list[str]]:
    """Static switching: one pool per photo holding every variant, in the order caption j, variant v (the English
    captions of a `mix-` arm once, first)."""
    if len(views) == 1:
        return views[0]
    spec = parse_arm(arm) if isinstance(arm, str) else arm
    pools = []
    for i, first in enumerate(views[0]):
        lead = len(first) // 2 if spec.with_english else 0  # mix-: EN captions, then one switched version each
        pool = list(first[:lead])
        for j in range(len(first) - lead):
            pool += [view[i][lead + j] for view in views]
        pools.append(pool)
    return pools


def build_pools(
    arm: str | ArmSpec,
    english: Sequence[Sequence[str]],
    translations: Mapping[str, Sequence[Sequence[str]]] | None = None,
    lexicons: Mapping[str, Lexicon] | None = None,
    variants: int = 2,
    cs_seed: int = 0,
) -> list[list[str]]:
    """Static switching pools (`flatten_views` of `build_pool_views`)."""
    return flatten_views(arm, build_pool_views(arm, english, translations, lexicons, variants, cs_seed))
