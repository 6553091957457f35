"""The evaluation settings: one registry that evaluation, the results schema, analysis, CLI and pages all read.

A setting is the paper's retrieval task transposed to dual image-text encoders. Adding one means one `Setting`
entry here (plus its runner in `csr_core.evaluate`): the results schema, the CLI choices, the Run page, the heatmap
page and the per-query browser derive everything they show from these fields.

Layouts (how the heatmap page draws one setting):
- `series×lang`: one row per model/run series, one column per caption language (several runs side by side);
- `lang×lang`: one run, query language × document language;
- `curve`: one run, switching curve (mode/languages) × switching probability p.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from csr_core.errors import DataError

if TYPE_CHECKING:  # the registry itself is imported by the CLI router: keep it free of numpy/pandas
    import pandas as pd

LAYOUTS = ("series×lang", "lang×lang", "curve")


@dataclass(frozen=True)
class Setting:
    """What a setting is, how its rows are keyed and how it is shown."""

    name: str
    label: str
    description: str
    directions: tuple[str, ...]
    needs_images: bool
    layout: str
    runner: str  # name of the function in csr_core.evaluate that runs it, resolved lazily (no import cycle)
    extra_metrics: tuple[str, ...] = ()
    code_switched: bool = False  # cells keyed by (cs_mode, cs_langs, cs_p); captions shown are the English originals
    pooled_queries: bool = False  # one gallery/query pool over all languages: t2i query ids are "<lang>:<image>#<j>"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"setting {self.name}: layout must be one of {LAYOUTS}, got {self.layout!r}")

    @property
    def one_run_per_view(self) -> bool:
        """True when the heatmap shows one run (language pairs or curves) rather than many series side by side."""
        return self.layout != "series×lang"

    def run(self, context: Any):
        """Call this setting's evaluation runner (records, rank frames)."""
        from csr_core import evaluate

        return getattr(evaluate, self.runner)(context)

    def cell_mask(self, ranks: pd.DataFrame, *, direction: str, lang: str, doc_lang: str | None = None,
                  cs_mode: str = "", cs_langs: str = "", cs_p: float | None = None) -> pd.Series:
        """The per-query rank rows of one heatmap cell (`lang` is the caption-side language; doc_lang for i2t)."""
        import numpy as np

        mask = (ranks["setting"] == self.name) & (ranks["direction"] == direction)
        if self.code_switched:
            mask &= (ranks["cs_mode"] == cs_mode) & (ranks["cs_langs"] == cs_langs)
            if cs_p is not None:
                mask &= np.isclose(ranks["cs_p"].astype(float), float(cs_p))
        elif direction == "i2t":
            mask &= ranks["doc_lang"] == lang
        elif self.layout == "lang×lang":
            mask &= (ranks["query_lang"] == lang) & (ranks["doc_lang"] == (doc_lang or ""))
        else:
            mask &= ranks["query_lang"] == lang
        return mask

    def caption_lang(self, lang: str) -> str:
        """The language of the captions a cell's queries were made from (code-switched queries start as English)."""
        return "en" if self.code_switched else lang

    def cell_of(self, y_value: str, x_value: str, cell_row: pd.Series | None) -> dict[str, Any]:
        """query-browser arguments for the heatmap cell at (row y_value, column x_value)."""
        if self.code_switched:
            if cell_row is None:
                return {"lang": "en"}
            return {"lang": "en", "cs_mode": cell_row["cs_mode"], "cs_langs": cell_row["cs_langs"],
                    "cs_p": float(cell_row["cs_p"])}
        if self.layout == "lang×lang":
            return {"lang": str(y_value), "doc_lang": str(x_value)}
        return {"lang": str(x_value)}


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("monolingual", "Monolingual (captions ↔ images)",
                "captions of language X ↔ images (MoIR analogue)", ("t2i", "i2t"), True, "series×lang",
                "_monolingual"),
        Setting("cross", "Cross-lingual (caption X → caption Y)",
                "caption in X → its parallel caption in Y through the text tower (CLIR analogue), L×L", ("t2t",),
                False, "lang×lang", "_cross"),
        Setting("multilingual", "Multilingual gallery",
                "one gallery with captions of all languages (MLIR analogue) + language share of top-1 hits",
                ("i2t", "t2i"), True, "series×lang", "_multilingual",
                extra_metrics=("lang_share",), pooled_queries=True),
        Setting("cs-queries", "Code-switched EN queries",
                "English queries code-switched into X at p ∈ {0, .25, .5, .75, 1}: a robustness curve", ("t2i",),
                True, "curve", "_cs_queries", code_switched=True),
        Setting("translate-test", "Translate-test (X → EN word by word)",
                "captions of X translated word by word into English (inverted MUSE, first sense; zh segmented by "
                "jieba), then ↔ images as English queries: the translate-test baseline", ("t2i",), True,
                "series×lang", "_translate_test"),
    )
}
SETTING_NAMES: tuple[str, ...] = tuple(SETTINGS)
IMAGE_SETTINGS: tuple[str, ...] = tuple(name for name, s in SETTINGS.items() if s.needs_images)
# Settings whose rows compare across models per caption language (what arm-vs-arm views pool and test).
SERIES_SETTINGS: tuple[str, ...] = tuple(name for name, s in SETTINGS.items() if s.layout == "series×lang")
CODE_SWITCHED_SETTINGS: tuple[str, ...] = tuple(name for name, s in SETTINGS.items() if s.code_switched)


def get_setting(name: str) -> Setting:
    """The registered setting called `name`; a clear error listing the choices otherwise."""
    try:
        return SETTINGS[name]
    except (KeyError, TypeError):
        raise DataError(f"unknown setting {name!r}; choose from {', '.join(SETTING_NAMES)}") from None


def check_settings(names: Any) -> tuple[str, ...]:
    """Validate a list of setting names (unknown or none chosen is an error naming the choices)."""
    names = tuple(names)
    unknown = [s for s in names if s not in SETTINGS]
    if unknown:
        raise DataError(f"unknown setting(s) {unknown}; choose from {', '.join(SETTING_NAMES)}")
    if not names:
        raise DataError("no setting chosen; choose from " + ", ".join(SETTING_NAMES))
    return names

