"""Markdown for the second experiment's report: templates over `design_report.DesignReport`, no statistics here.

Every sentence is chosen by a rule over a declared test (significance after Holm in its family, TOST for "unchanged",
the minimum detectable effect beside every non-significant result), so the prose cannot say more than the tests.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from csr_core.training.arms import CLOSE_LANGS, DISTANT_LANGS, parse_arm
from csr_core.training.design_report import (
    ALPHA,
    BETWEEN_LANGS,
    ENGLISH_MARGIN,
    PRIMARY_K,
    TRANSLATE_TEST,
    Cell,
    DesignReport,
    EnglishCost,
    Test,
    TowerReport,
    fmt_p,
)

TOWER_LABEL = {"e5": "multilingual-e5-small (csr-mini-m)", "minilm": "MiniLM, English-only (csr-mini)"}
COMMAND = "bash results/experiment2.sh && python -m csr_core experiment --design experiment-2 --report-only"
MAIN_RUN_SET = "experiment-2"  # its report is results/README.md


def _num(x: float, signed: bool = False) -> str:
    if not math.isfinite(x):
        return "–"
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def _cell(cell: Cell | None) -> str:
    if cell is None:
        return "–"
    e = cell.estimate
    sd = f" ±{cell.seed_sd:.1f}" if math.isfinite(cell.seed_sd) else ""
    return f"{_num(e.value)} [{_num(e.low)}, {_num(e.high)}]{sd}"


def _test(t: Test) -> str:
    e = t.estimate
    star = "*" if t.significant else ""
    text = f"{_num(e.value, True)}{star} [{_num(e.low, True)}, {_num(e.high, True)}] p={fmt_p(t.p_adjusted)}"
    return text if t.significant else f"{text} (MDE {t.mde:.1f})"


def _group(lang: str) -> str:
    return "close" if lang in CLOSE_LANGS else "distant" if lang in DISTANT_LANGS else \
        "between" if lang in BETWEEN_LANGS else ""


def answer_lines(report: DesignReport) -> list[str]:
    """The current answer, one bullet per tower (the README's and the Overview's first lines)."""
    return [line for t in report.towers for line in _answer(t)]


def _answer(t: TowerReport) -> list[str]:
    """The close-vs-distant answer for one tower, one sentence per arm kind, from family F2."""
    if not t.f2:
        return [f"- {TOWER_LABEL.get(t.tower, t.tower)}: not enough runs yet for the declared test."]
    more_distant = [x.arm for x in t.f2 if x.significant and x.estimate.value > 0]
    more_close = [x.arm for x in t.f2 if x.significant and x.estimate.value < 0]
    neither = [x for x in t.f2 if not x.significant]
    parts = [f"- **{TOWER_LABEL.get(t.tower, t.tower)}** ({len(t.f2)} arms tested, Holm over them):"]
    if more_distant:
        parts.append(f"  distant languages gain significantly more than close ones under {', '.join(more_distant)};")
    if more_close:
        parts.append(f"  close languages gain significantly more than distant ones under {', '.join(more_close)};")
    if neither:
        mdes = ", ".join(f"{x.arm} (MDE {x.mde:.1f})" for x in neither)
        parts.append(f"  no difference between the groups is shown for {mdes} -- not evidence of equal gains.")
    return parts


def english_verdict(cost: EnglishCost, f1: dict[tuple[str, str], Test]) -> str:
    test = f1.get((cost.arm, "en"))
    if cost.tost["equivalent"]:
        return f"unchanged within ±{ENGLISH_MARGIN:g} (TOST p={fmt_p(cost.tost['p_value'])})"
    if test is not None and test.significant:
        return "drops" if cost.estimate.value < 0 else "rises"
    return f"inconclusive: neither a change (F1) nor equivalence within ±{ENGLISH_MARGIN:g} is shown"


def _unseen_rows(t: TowerReport, f1: dict[tuple[str, str], Test]) -> list[str]:
    rows = []
    for arm in t.arms:
        if arm == TRANSLATE_TEST:  # a baseline row, not a training arm
            continue
        spec = parse_arm(arm)
        if not spec.switched or spec.noise:
            continue
        for lang in t.langs:
            if lang != "en" and lang not in spec.langs and (arm, lang) in f1:
                rows.append(f"| {arm} | {', '.join(spec.langs)} | {lang} ({_group(lang)}) | {_test(f1[(arm, lang)])} |")
    return rows


def _tower_sections(t: TowerReport, design_seeds: list[int]) -> list[str]:
    label = TOWER_LABEL.get(t.tower, t.tower)
    langs = t.langs
    head = "| arm | seeds | " + " | ".join(f"{x} ({_group(x)})" if _group(x) else x for x in langs) + " |"
    sep = "|" + "---|" * (len(langs) + 2)
    out = [f"## {label}", "",
           f"Text→image R@{PRIMARY_K} (primary metric), mean over seeds [95% two-level bootstrap CI] ±sd over seeds:",
           "", head, sep]
    for arm in t.arms:
        out.append(f"| {arm} | {len(t.seeds[arm])}/{len(design_seeds)} | "
                   + " | ".join(_cell(t.primary.get((arm, x))) for x in langs) + " |")
    f1 = {(x.arm, x.target): x for x in t.f1}
    out += ["", f"Family F1: Δ vs EN-only, text→image R@{PRIMARY_K} (points [95% CI], Holm over all "
            f"{len(t.f1)} arm × language tests; * = significant at {ALPHA:g}; MDE = the effect this test detects "
            "with 80 % power):", "", "| arm | " + " | ".join(langs) + " |", "|" + "---|" * (len(langs) + 1)]
    for arm in t.arms:
        if arm == "en":
            continue
        out.append(f"| {arm} | " + " | ".join(_test(f1[(arm, x)]) if (arm, x) in f1 else "–" for x in langs) + " |")
    if t.f2:
        out += ["", f"Family F2 (the question): gain over EN-only in the distant languages ({', '.join(DISTANT_LANGS)}) "
                f"minus the gain in the close ones ({', '.join(CLOSE_LANGS)}), per photo, points; > 0: the gap to "
                "English shrinks more for distant languages (Holm over the arms):", "",
                "| arm | distant − close | verdict |", "|---|---|---|"]
    for x in t.f2:
        verdict = ("distant gain more" if x.significant and x.estimate.value > 0 else
                   "close gain more" if x.significant else "no difference shown")
        out.append(f"| {x.arm} | {_test(x)} | {verdict} |")
    unseen = _unseen_rows(t, f1)
    if unseen:
        out += ["", "Unseen languages (from family F1): each code-switched arm on the test languages it never switched "
                "into — close-only training measured on distant languages and the reverse:", "",
                "| arm | switched into | unseen language | Δ vs EN-only |", "|---|---|---|---|"]
        out += unseen
    out += ["", f"English cost: Δ_en (90% interval, for TOST at ±{ENGLISH_MARGIN:g} points):", "",
            "| arm | Δ en | 90% interval | verdict |", "|---|---|---|---|"]
    for cost in t.english:
        out.append(f"| {cost.arm} | {_num(cost.estimate.value, True)} | [{_num(cost.tost['low'], True)}, "
                   f"{_num(cost.tost['high'], True)}] | {english_verdict(cost, f1)} |")
    out += ["", "Exploratory (no correction): gap closure (arm_X − EN_X) / (EN_en − EN_X), 1 = gap gone, "
            "0 = unchanged (point estimates):", "", "| arm | " + " | ".join(x for x in langs if x != "en") + " |",
            "|" + "---|" * len(langs)]
    for arm in t.arms:
        if arm == "en":
            continue
        vals = [t.closure.get((arm, x), math.nan) for x in langs if x != "en"]
        out.append(f"| {arm} | " + " | ".join("–" if not math.isfinite(v) else f"{v:+.2f}" for v in vals) + " |")
    if t.multilingual:
        out += ["", f"Exploratory: multilingual gallery (all {len(langs)} languages' captions as queries, one photo "
                f"gallery), text→image R@{PRIMARY_K}:", "", "| arm | R@10 |", "|---|---|"]
        out += [f"| {arm} | {_cell(t.multilingual.get(arm))} |" for arm in t.arms]
    if t.lang_share:
        out += ["", "Exploratory: multilingual gallery, each language's share of the top-1 image→text hits (%; mean "
                "±sd over seeds; an unbiased model gives each language its share of the gallery):", "",
                "| arm | " + " | ".join(langs) + " |", "|" + "---|" * (len(langs) + 1)]
        for arm in t.arms:
            cells = [t.lang_share.get((arm, x)) for x in langs]
            out.append(f"| {arm} | " + " | ".join("–" if c is None else f"{c[0]:.1f}" + (
                f" ±{c[1]:.1f}" if math.isfinite(c[1]) else "") for c in cells) + " |")
    if t.cs_queries:
        cs_cells = list(dict.fromkeys(c for _, c in t.cs_queries))
        out += ["", f"Exploratory: code-switched English queries (the same switched queries for every seed), "
                f"text→image R@{PRIMARY_K} [95% two-level CI]:", "", "| arm | " + " | ".join(cs_cells) + " |",
                "|" + "---|" * (len(cs_cells) + 1)]
        for arm in t.arms:
            if any((arm, c) in t.cs_queries for c in cs_cells):
                out.append(f"| {arm} | " + " | ".join(_cell(t.cs_queries.get((arm, c))) for c in cs_cells) + " |")
    out += ["", "Exploratory: image→text R@10 per language:", "", "| arm | " + " | ".join(langs) + " |",
            "|" + "---|" * (len(langs) + 1)]
    for arm in t.arms:
        out.append(f"| {arm} | " + " | ".join(_cell(t.secondary.get((arm, "i2t", x, 10))) for x in langs) + " |")
    return out + [""]


_EXPERIMENT_2_DESIGN = (
    "on the 663 train photos of flickr8k-multi30k; early stopping on the val photos with English captions only; "
    "evaluated on the 237 test photos (en, de, fr, pt, cs: Multi30K task1, one human caption per photo; zh: five native "
    "Flickr8k-CN captions; ar: three Arabic Flickr8k translations). Seeds vary the initialisation, batches and the "
    "code-switching draws; code-switched arms switch dynamically (epoch e trains on variant e mod k of each caption; "
    "k = 1 for e5, 2 for MiniLM on this CPU budget, so e5 re-switches across seeds, not epochs). Arms:")
_EXPERIMENT_1_DESIGN = (
    "on the 663 train photos of flickr8k-multi30k; early stopping on the val photos with English captions only; "
    "evaluated on the 237 test photos (en, de, fr, cs: Multi30K task1, one human caption per photo). Seeds vary the "
    "initialisation and batches only: every seed trains on the same code-switched text (one switched variant per "
    "caption, CodeSwitcher seed 0, static), so seed variance understates what a new switching draw would change. "
    "The lexicons are MUSE's dictionaries (first sense). Arms:")
_EXPERIMENT_1_BANNER = (
    "**Superseded by experiment 2 ([README.md](README.md)); kept as the record of the first grid, read with experiment "
    "2's declared analysis.** An audit of this grid's first report found its inference weaker than its prose (Holm over "
    "the 4 languages of one arm while sentences added up across arms; queries resampled as if independent; seed "
    "variance outside every CI; \"English stays level\" read from non-significance). This page now states only what the "
    "tests below support. What the design itself cannot fix: all seeds share one code-switched text; Czech is the only "
    "non-Romance/Germanic language (Slavic, \"between\", not distant); BL-CS trains 5/5 captions in X against "
    "translate-train's 1/8 (unequal exposure). The grid was rerun from a clean commit on 2026-12-04 (its first runs "
    "came from a dirty tree: the grid rewrote the shipped heads it was evaluating); the rerun reproduced each model's "
    "best step. Its XTD10 text rows and k = 2 ablation stay in `results/runs/` (Heatmaps and Fine-tuning pages) and "
    "are not re-reported here; the top-2-layer arms are experiment-2-towers' ([README](experiment-2-towers/README.md)).")


@dataclass(frozen=True)
class _Page:
    """What a run set's report says about itself: its title, design prose, an optional banner and its files."""

    title: str
    design: str
    readme: str  # path under the results folder
    facts: str
    banner: str = ""


TOWERS_RUN_SET = "experiment-2-towers"


def page(run_set: str) -> _Page:
    """The report page of a run set: experiment 2 is the results README; experiment 1 (run set "") its own page."""
    if run_set == MAIN_RUN_SET:
        return _Page("Experiment 2: do code-switched captions close the gap to English more for distant languages?",
                     _EXPERIMENT_2_DESIGN, "README.md", f"{run_set}/report.json")
    if run_set == "":
        return _Page("Experiment 1 (superseded): does code-switched training beat English-only training?",
                     _EXPERIMENT_1_DESIGN, "experiment-1.md", "experiment-1/report.json", _EXPERIMENT_1_BANNER)
    return _Page(f"Run set {run_set}", "on the design's photos (see `csr_core/experiment.py`). Arms:",
                 f"{run_set}/README.md", f"{run_set}/report.json")


def _design_name(run_set: str) -> str:
    from csr_core.training.designs import DESIGNS

    return next(name for name, d in DESIGNS.items() if d.run_set == run_set)


def command(run_set: str) -> str:
    """The command that makes a run set's runs and this report."""
    if run_set == MAIN_RUN_SET:
        return COMMAND
    name = _design_name(run_set)
    return f"python -m csr_core experiment --design {name} && python -m csr_core experiment --design {name} --report-only"


def _has_groups(report: DesignReport) -> bool:
    """Whether the design evaluates close and distant languages (family F2 exists)."""
    langs = {x for t in report.towers for x in t.langs}
    return bool(langs & set(CLOSE_LANGS)) and bool(langs & set(DISTANT_LANGS))


def render(report: DesignReport) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    about = page(report.run_set)
    arms = "\n".join(f"- `{a}`: {parse_arm(a).describe}" for a in report.design_arms)
    total = len(report.design_arms) * len(report.design_seeds)
    groups = _has_groups(report)
    family_2 = (" Family F2: per arm, the distant (" + ", ".join(DISTANT_LANGS) + ") minus close ("
                + ", ".join(CLOSE_LANGS) + ") gain, Holm over arms." if groups else
                " The design has no distant language, so the close-vs-distant family (F2) does not exist here.")
    lines = [
        f"# {about.title}", "",
        f"Generated on {when} from {report.n_runs} test-photo runs of run set `{report.run_set or '(none)'}` "
        f"(commits {', '.join(report.commits) or '–'}; {report.dirty_runs} made from a dirty tree). "
        f"Reproduce: `{command(report.run_set)}`. Do not edit by hand.", "",
        *([about.banner, ""] if about.banner else []),
        "Completeness: " + "; ".join(f"{TOWER_LABEL.get(t.tower, t.tower)} "
                                     f"{sum(len(t.seeds.get(arm, [])) for arm in report.design_arms)}"
                                     f"/{total} (tower, arm, seed) runs" for t in report.towers)
        + ". A partial grid is reported as what it is: each row says how many seeds it pools.", "",
        "## Design", "",
        ("Heads trained on cached tower features (the image tower and the text tower frozen) " if not report.top_layers
         else f"Heads and the text tower's top {report.top_layers} layers trained (the image tower frozen) ")
        + about.design, "", arms, "",
        *([("Induced lexicons (`ind-` arms): BLI precision@1 against MUSE, over the training-caption words MUSE "
            "covers: " + ", ".join(f"{lang} {100 * p:.1f} % (n = {n})" for lang, (p, n) in report.bli.items())), ""]
          if report.bli else []),
        "## Declared analysis", "",
        f"Primary metric text→image R@{PRIMARY_K}. Estimates pool seeds: a two-level bootstrap (seeds, then photos, "
        "with replacement; seed s of an arm paired with seed s of EN-only); CIs are its percentile intervals, "
        "p-values two-sided t from its standard error (photos − 1 degrees of freedom). Family F1: every arm vs EN-only "
        f"in every language, Holm.{family_2} English cost: TOST at ±{ENGLISH_MARGIN:g} points. "
        f"{', '.join(BETWEEN_LANGS)} is evaluated but in neither group. Everything else is exploratory.", "",
        "## The answer", "",
    ]
    lines += answer_lines(report) if groups else f1_answer_lines(report)
    lines.append("")
    for t in report.towers:
        lines += _tower_sections(t, report.design_seeds)
    lines += ["## Other shipped evidence", ""]
    up = "../" * page(report.run_set).readme.count("/")  # links are relative to this page's folder
    if report.run_set != MAIN_RUN_SET:
        lines.append(f"- [README.md]({up}README.md): experiment 2, the close-vs-distant design (heads only, 5 seeds).")
    if report.run_set != TOWERS_RUN_SET:
        lines.append(f"- [experiment-2-towers]({up}experiment-2-towers/README.md): its main arms with the text "
                     "tower's top 2 layers trained too (3 seeds); `python -m csr_core experiment --design "
                     "experiment-2-towers --report-only`.")
    if report.run_set != "":
        lines.append(f"- [experiment-1.md]({up}experiment-1.md): the first grid (de/fr/cs, 3 seeds sharing one "
                     "code-switched text), read with this analysis; `python -m csr_core experiment --design "
                     "experiment-1 --report-only`.")
    lines += [f"- [distant-languages.md]({up}distant-languages.md): the first grid's seed-0 heads on pt/zh/ar and "
              "language pairs; `bash results/distant_languages.sh`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def f1_answer_lines(report: DesignReport) -> list[str]:
    """For a design without distant languages: per tower, where family F1 shows gains, losses and nothing."""
    out = []
    for t in report.towers:
        gains = [f"{x.arm} on {x.target}" for x in t.f1 if x.significant and x.estimate.value > 0]
        losses = [f"{x.arm} on {x.target}" for x in t.f1 if x.significant and x.estimate.value < 0]
        out.append(f"- **{TOWER_LABEL.get(t.tower, t.tower)}** ({len(t.f1)} arm × language tests, Holm over all): "
                   f"significant gains over EN-only for {', '.join(gains) or 'none'}; significant losses for "
                   f"{', '.join(losses) or 'none'}; the other {len(t.f1) - len(gains) - len(losses)} tests show no "
                   "difference (not evidence of none: see each test's MDE).")
    return out


def write(report: DesignReport, results_root) -> list:
    """The run set's page (`page(run_set).readme`: results/README.md for experiment 2) and its facts
    (`page(run_set).facts`, for the dashboard), each atomically."""
    import json
    from pathlib import Path

    from csr_core import _io
    from csr_core.training.design_report import to_json

    root = Path(results_root)
    facts = json.dumps(to_json(report), indent=1, sort_keys=True, allow_nan=True)
    about = page(report.run_set)
    paths = [root / about.readme, root / about.facts]
    _io.atomic_write_text(paths[1], facts + "\n")
    _io.atomic_write_text(paths[0], render(report))
    return paths
