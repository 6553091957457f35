"""results/distant-languages.md: the close-vs-distant answer of the shipped runs, as markdown (`csr-lab gaps --summary`).

Which runs: on flickr8k-multi30k, the newest run of each model whose languages include Chinese and Arabic (the
shipped heads re-evaluated on every language of the test photos); on XTD10, the seed-0 runs of the EN-only,
ML-CS and translate-train arms (10 aligned languages, 45 pairs). Every number comes from `gap_views` / `pairs` /
the stored rows; this module only selects runs and lays tables out.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pandas as pd

from csr_core.gap_views import gap_view
from csr_core.languages import display_order
from csr_core.pairs import analyse_pairs
from csr_core.results import ResultsStore, caption_lang

REPRODUCE = "bash results/distant_languages.sh"
SUMMARY = "python -m csr_core gaps --summary results/distant-languages.md"
LANGS = ("en", "de", "fr", "pt", "cs", "zh", "ar", "en-x-f8k", "zh-x-f8k")  # shown in display_order
PAIR_ARMS = ("en", "mlcs-de-fr-cs", "translate-train")


def _distant_runs(store: ResultsStore) -> list[dict]:
    """Newest flickr8k-multi30k run per model that evaluated zh and ar monolingually, in model order (runs outside
    any experiment's run set: the second experiment reports its own)."""
    newest: dict[str, dict] = {}
    for manifest in store.runs():  # oldest first
        params = manifest.get("params") or {}
        if (not params.get("run_set") and params.get("dataset") == "flickr8k-multi30k" and {"zh", "ar"} <= set(params.get("langs", ()))
                and "monolingual" in params.get("settings", ())):
            newest[str(params["model"])] = manifest
    return [newest[m] for m in sorted(newest)]


def _pair_runs(store: ResultsStore) -> list[dict]:
    from csr_core.model_names import CsrMiniName

    chosen = []
    for manifest in store.runs():
        params = manifest.get("params") or {}
        name = CsrMiniName.try_parse(str(params.get("model", "")))
        if (not params.get("run_set") and params.get("dataset") == "xtd10" and name is not None and name.seed == 0 and not name.top_layers
                and name.arm in PAIR_ARMS):
            chosen.append(manifest)
    return sorted(chosen, key=lambda m: str(m["params"]["model"]))


def _cell(value: float, low: float = math.nan, high: float = math.nan, signed: bool = False) -> str:
    if not math.isfinite(value):
        return "—"
    text = f"{value:+.1f}" if signed else f"{value:.1f}"
    if math.isfinite(low) and math.isfinite(high):
        text += f" [{low:+.1f}, {high:+.1f}]" if signed else f" [{low:.1f}, {high:.1f}]"
    return text


def _p(value: float) -> str:
    return "—" if not math.isfinite(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _recall_table(rows: pd.DataFrame, runs: list[dict], direction: str, k: int) -> list[str]:
    part = rows[(rows["setting"] == "monolingual") & (rows["direction"] == direction) & (rows["metric"] == "recall")
                & (rows["k"] == k) & (rows["cs_mode"] == "")]
    part = part.assign(lang=caption_lang(part).to_numpy())
    langs = display_order(LANGS)
    body = []
    for manifest in runs:
        cells = part[part["run_id"] == manifest["run_id"]].set_index("lang")
        body.append([str(manifest["params"]["model"])] + [
            _cell(float(cells.loc[lang, "value"]), float(cells.loc[lang, "ci_low"]), float(cells.loc[lang, "ci_high"]))
            if lang in cells.index else "—" for lang in langs])
    return _table(["model"] + langs, body)


def _cs_table(rows: pd.DataFrame, runs: list[dict], k: int) -> list[str]:
    """English queries code-switched into one language (BL-CS) or all of them (ML-CS), t2i R@K, p = 0.5 and 1."""
    part = rows[(rows["setting"] == "cs-queries") & (rows["metric"] == "recall") & (rows["k"] == k)
                & (rows["direction"] == "t2i")]
    columns: list[tuple[str, str, float]] = []
    for mode, targets in (("bl", "de"), ("bl", "fr"), ("bl", "pt"), ("bl", "cs"), ("bl", "zh"), ("bl", "ar")):
        columns += [(mode, targets, p) for p in (0.5, 1.0)]
    part = part[part["run_id"].isin({m["run_id"] for m in runs})]
    ml = sorted(set(part.loc[part["cs_mode"] == "ml", "cs_langs"]))
    columns += [("ml", targets, p) for targets in ml for p in (0.5, 1.0)]
    body = []
    for manifest in runs:
        mine = part[part["run_id"] == manifest["run_id"]]
        cells = []
        for mode, targets, p in columns:
            hit = mine[(mine["cs_mode"] == mode) & (mine["cs_langs"] == targets) & (mine["cs_p"] == p)]
            cells.append(_cell(float(hit["value"].iloc[0])) if len(hit) else "—")
        body.append([str(manifest["params"]["model"])] + cells)
    header = ["model"] + [f"{mode.upper()}-CS {targets} p={p:g}" for mode, targets, p in columns]
    return _table(header, body)


def _delta_table(store: ResultsStore, runs: list[dict], k: int) -> list[str]:
    from csr_core.analysis import compare_runs
    from csr_core.model_names import CsrMiniName

    by_name = {m["params"]["model"]: m for m in runs}
    langs = [lang for lang in display_order(LANGS) if lang != "zh-x-f8k"]  # 22 photos: too few to compare arms on
    body = []
    for model, manifest in by_name.items():
        name = CsrMiniName.try_parse(str(model))
        if name is None or name.arm == "en":
            continue
        baseline = next((m for other, m in by_name.items()
                         if (o := CsrMiniName.try_parse(str(other))) is not None and o.tower == name.tower
                         and o.arm == "en" and o.seed == name.seed), None)
        if baseline is None:
            continue
        delta = compare_runs(store.load_ranks(manifest["run_id"]), store.load_ranks(baseline["run_id"]), k=k)
        delta = delta[delta["lang"].isin(langs)].set_index("lang")
        body.append([str(model)] + [
            _cell(float(delta.loc[lang, "delta"]), float(delta.loc[lang, "ci_low"]), float(delta.loc[lang, "ci_high"]),
                  signed=True) + ("*" if bool(delta.loc[lang, "significant"]) else "")
            if lang in delta.index else "—" for lang in langs])
    return _table(["arm vs EN-only"] + langs, body)


def render(store: ResultsStore, *, k: int = 10, kind: str = "genetic") -> str:
    """The whole markdown page (module docstring)."""
    runs = _distant_runs(store)
    rows = store.load(include_reference=False)
    shas = sorted({str(m.get("git_sha", ""))[:8] for m in runs})
    lines = [
        "# Close vs distant languages on the same photos",
        "",
        f"Generated by `{SUMMARY}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {len(runs)} "
        f"flickr8k-multi30k runs (commit {', '.join(shas) or '—'}) and the shipped XTD10 runs. The flickr8k-multi30k "
        f"runs are made by `{REPRODUCE}`. Do not edit by hand: rerun the commands.",
        "",
        "Test split: the 237 test photos of flickr8k-multi30k. Languages and where their captions come from "
        "(`python -m csr_core datasets`): en/de/fr/cs/pt Multi30K task1 (human translations of each other, one per "
        "photo; pt from Framed Multi30K), en-x-f8k the five original Flickr8k English captions, zh the five Flickr8k-CN "
        "captions written by native speakers, zh-x-f8k their human translations of the English test captions (22 of "
        "the test photos), ar the Arabic Flickr8k translations of three English captions per photo. The models are "
        "the shipped seed-0 csr-mini heads of each training arm (trained on English, code-switched or translated "
        "de/fr/cs captions; none saw pt, zh or ar): zh, pt and ar are zero-shot for every arm. zh-x-f8k has 22 "
        "photos: its image→text gallery holds 110 captions, so its i2t numbers are not comparable with the others.",
        "",
        f"## Text→image R@{k} per language [95% bootstrap CI]",
        "",
        *_recall_table(rows, runs, "t2i", k),
        "",
        f"Image→text R@{k}:",
        "",
        *_recall_table(rows, runs, "i2t", k),
        "",
        f"## Gap to English by language group (text→image R@{k}, points, paired by photo)",
        "",
        "Groups: the paper's (close: de, fr, pt ...; distant: zh, ar ...), Czech between. Per photo: its English hit "
        "minus the mean over the group's languages of the photo's mean hit in that language; bootstrap CI over "
        "photos; close − distant by a paired permutation test over the photos every language shares. One caption set "
        "per language (zh-x-f8k is left out of groups and correlation).",
        "",
    ]
    group_rows, corr_rows = [], []
    for manifest in runs:
        view = gap_view(store.load_ranks(manifest["run_id"]), manifest, k=k, direction="t2i", kind=kind)
        bars = view.group_table.set_index("group")
        cells = [_cell(float(bars.loc[g, "value"]), float(bars.loc[g, "ci_low"]), float(bars.loc[g, "ci_high"]),
                       signed=True) if g in bars.index else "—" for g in ("close", "between", "distant")]
        test = view.group_test
        group_rows.append([str(manifest["params"]["model"])] + cells
                          + [_cell(float(test["diff"]), signed=True), _p(float(test["p_value"])), str(test["n"])])
        c = view.correlation
        corr_rows.append([str(manifest["params"]["model"]), str(c.n),
                          f"{c.spearman_rho:+.2f} [{c.spearman_ci[0]:+.2f}, {c.spearman_ci[1]:+.2f}]",
                          f"{c.pearson_r:+.2f} [{c.pearson_ci[0]:+.2f}, {c.pearson_ci[1]:+.2f}]",
                          _p(c.pearson_p)])
    lines += _table(["model", "gap close", "gap between (cs)", "gap distant", "close − distant", "p", "photos"],
                    group_rows)
    lines += ["", f"Gap to English vs URIEL {kind} distance from English, across the languages of each run "
              "(bootstrap CIs over languages; few languages, so indicative):", ""]
    lines += _table(["model", "languages", "Spearman ρ [95% CI]", "Pearson r [95% CI]", "Pearson p"], corr_rows)
    lines += ["", f"## Δ vs EN-only of the same text tower (text→image R@{k}, points)", "",
              "Each arm's heads against the EN-only heads of its tower on the same queries: 95% photo-level paired "
              "bootstrap CI, photo-level paired permutation test, Holm over the languages of a row (* = Holm p < 0.05). "
              "No arm was trained on pt, zh or ar captions.", ""]
    lines += _delta_table(store, runs, k)
    lines += ["", f"## Code-switched English queries into close and distant languages (text→image R@{k})", "",
              "English test captions with words replaced from the MUSE EN→X dictionaries (Chinese replacements joined "
              "without spaces), switching seed 0; p = 0 is plain English.", ""]
    lines += _cs_table(rows, runs, k)
    lines += ["", f"## Language pairs on XTD10 (cross-lingual text retrieval, R@{k})", "",
              "Pair score = mean R@K of X→Y and Y→X over 500 parallel lines; vs the URIEL distance between X and Y "
              "(10 languages, 45 pairs). Pairs share languages, so the bootstrap CIs over pairs are optimistic; the "
              "Mantel p permutes language labels instead.", ""]
    pair_rows = []
    for manifest in _pair_runs(store):
        result = analyse_pairs(store.load_ranks(manifest["run_id"]), k=k, kind=kind)
        c, m = result.correlation, result.mantel
        worst = result.pairs.sort_values("score").head(3)
        pair_rows.append([str(manifest["params"]["model"]), str(c.n),
                          f"{c.spearman_rho:+.2f} [{c.spearman_ci[0]:+.2f}, {c.spearman_ci[1]:+.2f}]", _p(m.p_value),
                          ", ".join(f"{p} {s:.1f}" for p, s in zip(worst["pair"], worst["score"]))])
    lines += _table(["model", "pairs", "Spearman ρ score vs distance [95% CI]", "Mantel p", "worst pairs"],
                    pair_rows)
    return "\n".join(lines) + "\n"
