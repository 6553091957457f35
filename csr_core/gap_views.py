"""The gap-to-English view of one run: what the Gaps page and `python -m csr_core gaps` show, computed once here.

Per language X of a monolingual run: gap = R@K(en) − R@K(X) (`analysis.language_gaps`, paired by caption where the
run recorded X as line-aligned with English, else by photo), its URIEL distance from English, its group (close /
between / distant, `languages.group_languages`) and its provenance (human translation, independent, machine ...).
Then the gap-vs-distance correlation and the paired close-vs-distant contrast by photo (`analysis.group_contrast`).

The contrast and the correlation use each language's main caption set (one point per language). A secondary set of a language the run also has in its main set
(`zh-x-f8k`, 22 test photos, beside `zh`, all 237) is left out of it, with a note: the contrast compares groups
on the photos every member shares, and one small set would shrink that to its photos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from csr_core.analysis import group_contrast, language_gaps, run_alignments
from csr_core.languages import (CorrelationResult, Group, base_lang, caption_set_key, distance_table, gap_correlation,
                                group_languages)

PIVOT = "en"
GAP_VIEW_COLUMNS = ["lang", "group", "provenance", "distance", "gap", "ci_low", "ci_high", "pivot_value",
                    "lang_value", "n", "paired", "p_holm", "note"]


@dataclass(frozen=True)
class GapView:
    """One run's gaps to English with typology, their correlation with distance and the group contrast."""

    gaps: pd.DataFrame  # GAP_VIEW_COLUMNS, one row per language besides the pivot
    correlation: CorrelationResult
    groups: dict[str, Group]  # every language of the run, the pivot included (as 'unknown')
    group_table: pd.DataFrame  # group, value, ci_low, ci_high, n, langs
    group_test: dict[str, Any]  # diff (gap close − gap distant), p_value, n, note
    notes: tuple[str, ...]
    kind: str
    k: int
    direction: str


def contrast_languages(langs: list[str]) -> tuple[list[str], list[str]]:
    """(languages the group contrast uses, notes on those left out): a language's main caption set, or its only one."""
    main = {base_lang(lang) for lang in langs if "-x-" not in caption_set_key(lang)}
    used, notes = [], []
    for lang in langs:
        if "-x-" in caption_set_key(lang) and base_lang(lang) in main:
            notes.append(f"{lang} left out of the group contrast and the correlation: {base_lang(lang)} is there with "
                         "its main caption set")
        else:
            used.append(lang)
    return used, notes


def gap_view(ranks: pd.DataFrame, manifest: Mapping[str, Any], *, k: int = 10, direction: str = "t2i",
             kind: str = "genetic", threshold: float | None = None, overrides: Mapping[str, str] | None = None,
             seed: int = 0, n_resamples: int = 1000) -> GapView:
    """Gaps, distances, groups, correlation and close-vs-distant contrast of one run (module docstring).

    `threshold` None groups by the project's default (the paper's groups, Czech between); a number groups by URIEL
    `kind` distance from English. `overrides` (language → group) win over either rule.
    """
    gaps = language_gaps(ranks, k=k, setting="monolingual", direction=direction, pivot=PIVOT, seed=seed,
                         n_resamples=n_resamples, alignments=run_alignments(manifest))
    langs = [PIVOT] + [str(lang) for lang in gaps["lang"]]
    groups = group_languages(langs, threshold=threshold, kind=kind, overrides=overrides)
    distances = distance_table(langs, pivot=PIVOT, kinds=(kind,))[kind] if len(gaps) else pd.Series(dtype=float)
    facts = (manifest.get("dataset") or {}).get("languages") or {}
    table = gaps.assign(
        group=[groups[lang] for lang in gaps["lang"]],
        provenance=[(facts.get(lang) or {}).get("provenance", "") for lang in gaps["lang"]],
        distance=[float(distances.get(caption_set_key(lang), float("nan"))) for lang in gaps["lang"]],
    )[GAP_VIEW_COLUMNS]
    used, notes = contrast_languages(langs)
    contrast_groups = {lang: groups[lang] for lang in used}
    group_table, group_test = group_contrast(ranks, contrast_groups, k=k, direction=direction, pivot=PIVOT, seed=seed,
                                             n_resamples=n_resamples)
    main = table[table["lang"].isin(used)]
    correlation = gap_correlation(dict(zip(main["lang"], main["gap"])), kind=kind, pivot=PIVOT, seed=seed)
    return GapView(table.reset_index(drop=True), correlation, groups, group_table, group_test, tuple(notes), kind, k,
                   direction)


def default_series(rows: pd.DataFrame, n: int = 3) -> list[str]:
    """The series a gaps view opens on: those whose runs cover the most languages (so a distant group is there
    when any run has one), EN-only arms first, then by name. `rows` are result rows with a `series` column."""
    from csr_core.results import caption_lang

    if rows.empty:
        return []
    coverage = rows.assign(lang=caption_lang(rows).to_numpy()).groupby("series").agg(langs=("lang", "nunique"), arm=("train_arm", "first"))
    coverage["not_en_only"] = coverage["arm"].fillna("") != "en"
    ordered = coverage.reset_index().sort_values(["langs", "not_en_only", "series"], ascending=[False, True, True])
    return [str(s) for s in ordered["series"].head(n)]
