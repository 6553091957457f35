"""A declared experiment's analysis (experiment 2's was declared before its runs were made; experiment 1 is read with
the same analysis after the fact): facts only, rendered by `design_render`.

Declared analysis (per text tower; every number from the stored per-query ranks of the run set):
- **Primary metric**: text->image R@10 on the 237 test photos of flickr8k-multi30k, one query per caption.
- **Family F1** (primary): every arm vs EN-only in every test language (arms x languages); Holm over the family.
- **Family F2** (the question): per arm, the distant-minus-close difference of its gains over EN-only,
  mean_{X in distant} Delta_X - mean_{X in close} Delta_X (> 0: the gap to English shrinks more for distant
  languages; the English terms of the two gaps cancel); Holm over the arms.
- **English cost**: Delta_en per arm with a TOST equivalence test at +-`ENGLISH_MARGIN` points (alpha 0.05).
- Every estimate is a mean over seeds and queries with a two-level bootstrap (seeds, then photos, with replacement;
  seed s of an arm paired with seed s of EN-only); p-values are two-sided t (photos - 1 df) from the bootstrap standard error
  (a tail count cannot resolve p below 1/N_BOOT, which Holm over ~100 tests needs); "no effect"
  is never claimed from a non-significant test: the minimum detectable effect (80 % power) is given beside it.
- Exploratory (unadjusted, labelled so): image->text, R@1/R@5, the multilingual gallery, gap closure ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from csr_core import _io
from csr_core.metrics import hits_at_k
from csr_core.model_names import CsrMiniName
from csr_core.stats import Estimate, adjust_tested, cluster_bootstrap, equivalence_test, gap_closure, paired_difference
from csr_core.training.arms import CLOSE_LANGS, DISTANT_LANGS

PRIMARY_K = 10
ENGLISH_MARGIN = 3.0  # points of R@10: "English is unchanged" means the 90 % interval of Delta_en lies inside +-3
ALPHA = 0.05
N_BOOT = 2000
BETWEEN_LANGS = ("cs",)  # evaluated, in neither group (Slavic: typologically between the close and distant sets)


def cs_query_cells(cs_langs: Sequence[str]) -> tuple[tuple[str, str, float], ...]:
    """Code-switched English query cells the report shows (mode, target languages, p): BL into each of the design's
    switching languages at 0.5, ML over all of them at 0.5 and 1 -- robustness to mixed-language queries, exploratory."""
    every = ",".join(cs_langs)
    return (*(("bl", x, 0.5) for x in cs_langs), ("ml", every, 0.5), ("ml", every, 1.0))


#: EN-only evaluated with X queries translated word by word into English: a baseline row beside the arms
TRANSLATE_TEST = "en+translate-test"


@dataclass(frozen=True)
class Cell:
    """One arm x language: mean over seeds with its two-level CI and the across-seed sd of R@K."""

    estimate: Estimate
    seed_sd: float


@dataclass(frozen=True)
class Test:
    """One declared (or exploratory) comparison: the estimate, its Holm-adjusted p within its family, the verdict."""

    arm: str
    target: str  # a language, or "distant - close"
    estimate: Estimate
    p_adjusted: float
    family: str  # "F1", "F2" or "exploratory"

    @property
    def significant(self) -> bool:
        return bool(self.p_adjusted < ALPHA)

    @property
    def mde(self) -> float:
        return self.estimate.mde(alpha=ALPHA)


@dataclass(frozen=True)
class EnglishCost:
    arm: str
    estimate: Estimate
    tost: dict


@dataclass
class TowerReport:
    tower: str
    arms: list[str]
    seeds: dict[str, list[int]]  # arm -> seeds found
    langs: list[str]
    primary: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (arm, lang) -> t2i R@10
    secondary: dict[tuple[str, str, str, int], Cell] = field(default_factory=dict)  # (arm, direction, lang, k)
    f1: list[Test] = field(default_factory=list)
    f2: list[Test] = field(default_factory=list)
    english: list[EnglishCost] = field(default_factory=list)
    closure: dict[tuple[str, str], float] = field(default_factory=dict)  # (arm, lang) -> gap closure (point)
    multilingual: dict[str, Cell] = field(default_factory=dict)  # arm -> t2i R@10 in the 7-language gallery
    lang_share: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)  # (arm, lang) -> mean, sd
    cs_queries: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (arm, "ml:de,fr p=0.5") -> t2i R@10


@dataclass
class DesignReport:
    run_set: str
    design_seeds: list[int]
    design_arms: list[str]
    towers: list[TowerReport]
    commits: list[str]
    dirty_runs: int
    n_runs: int
    top_layers: int = 0  # text-tower layers the design trains (0: heads only)
    bli: dict[str, tuple[float, int]] = field(default_factory=dict)  # induced lexicons: lang -> (P@1 vs MUSE, n)


# ---- loading --------------------------------------------------------------------------------------------------------


@dataclass
class _Runs:
    """run ids of the run set's test-photo runs: (tower, arm) -> seed -> run id (newest wins)."""

    ids: dict[tuple[str, str], dict[int, str]]
    manifests: list[dict]


def _find(store, run_set: str, dataset: str = "flickr8k-multi30k", top_layers: int = 0) -> _Runs:
    ids: dict[tuple[str, str], dict[int, str]] = {}
    chosen = []
    for manifest in store.runs():  # oldest first
        params = manifest.get("params") or {}
        if params.get("run_set", "") != run_set or params.get("dataset") != dataset:
            continue
        model = str(params.get("model", ""))
        name = CsrMiniName.try_parse(model)
        if name is None or name.top_layers != top_layers or name.explicit != model:
            continue  # only the grid's explicit `<base>:<arm>/s<seed>` names (not a page's `csr-mini` eval)
        ids.setdefault((name.tower, name.arm), {})[name.seed] = manifest["run_id"]
        chosen.append(manifest)
    return _Runs(ids, chosen)


class _Hits:
    """Per-query hits of the run set's runs, aligned on query ids across seeds, with the photo of each query."""

    def __init__(self, store, runs: _Runs):
        self.store, self.runs = store, runs
        self._frames: dict[str, pd.DataFrame] = {}

    def _ranks(self, run_id: str) -> pd.DataFrame:
        if run_id not in self._frames:
            self._frames[run_id] = self.store.load_ranks(run_id)
        return self._frames[run_id]

    def has_setting(self, tower: str, arm: str, seed: int, setting: str) -> bool:
        return bool((self._ranks(self.runs.ids[(tower, arm)][seed])["setting"] == setting).any())

    def matrix(self, tower: str, arm: str, seeds: Sequence[int], setting: str, direction: str, lang: str,
               k: int, cs: tuple[str, str, float] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(queries x seeds hits, photo per query, query ids); queries present in every seed. The pseudo-arm
        `TRANSLATE_TEST` reads the EN-only runs' translate-test rows."""
        if arm == TRANSLATE_TEST:
            arm, setting = "en", ("translate-test" if setting == "monolingual" else "-")
        cols, photos = {}, None
        side = "query_lang" if direction == "t2i" else "doc_lang"
        for s in seeds:
            frame = self._ranks(self.runs.ids[(tower, arm)][s])
            if cs is None:
                sel = frame[(frame["setting"] == setting) & (frame["direction"] == direction) & (frame[side] == lang)
                            & frame["cs_mode"].fillna("").eq("")]
            else:  # a code-switched query cell: (mode, target languages, p)
                sel = frame[(frame["setting"] == setting) & (frame["cs_mode"] == cs[0]) & (frame["cs_langs"] == cs[1])
                            & np.isclose(frame["cs_p"].astype(float), cs[2])]
            if sel.empty:
                return np.zeros((0, 0)), np.zeros(0, dtype=object), []  # this run did not evaluate it
            series = pd.Series(hits_at_k(sel["rank"].to_numpy(), k).astype(float), index=sel["query_id"].to_numpy())
            cols[s] = series
            if photos is None:
                photos = pd.Series(sel["image_id"].to_numpy(), index=sel["query_id"].to_numpy())
        table = pd.DataFrame(cols).dropna()
        if photos is None or table.empty:
            return np.zeros((0, 0)), np.zeros(0, dtype=object), []
        return table.to_numpy(), photos.loc[table.index].to_numpy(), list(table.index)


# ---- computing ------------------------------------------------------------------------------------------------------


def _cell(mat: np.ndarray, photos: np.ndarray, seed: int) -> Cell:
    est = cluster_bootstrap(mat, photos, seed=seed, n_resamples=N_BOOT)
    sd = float(np.std(mat.mean(axis=0) * 100, ddof=1)) if mat.shape[1] > 1 else float("nan")
    return Cell(est, sd)


def _per_photo(mat: np.ndarray, photos: np.ndarray) -> pd.DataFrame:
    """photos x seeds: each photo's mean hit over its captions."""
    return pd.DataFrame(mat).groupby(photos).mean()


def _tower(hits: _Hits, tower: str, arms: Sequence[str], langs: Sequence[str],
           cs_cells: Sequence[tuple[str, str, float]]) -> TowerReport:
    found = {arm: sorted(hits.runs.ids.get((tower, arm), {})) for arm in arms}
    present = [arm for arm in arms if found[arm]]
    if "en" in present and any(hits.has_setting(tower, "en", s, "translate-test") for s in found["en"]):
        found[TRANSLATE_TEST] = [s for s in found["en"] if hits.has_setting(tower, "en", s, "translate-test")]
        present.append(TRANSLATE_TEST)
    report = TowerReport(tower, present, {a: found[a] for a in present}, list(langs))
    if "en" not in present:
        return report
    boot_seed = 0
    for arm in present:
        for lang in langs:
            mat, photos, _ = hits.matrix(tower, arm, found[arm], "monolingual", "t2i", lang, PRIMARY_K)
            if mat.size:
                report.primary[(arm, lang)] = _cell(mat, photos, boot_seed)
            for direction, k in (("t2i", 1), ("t2i", 5), ("i2t", 1), ("i2t", 5), ("i2t", 10)):
                m2, p2, _ = hits.matrix(tower, arm, found[arm], "monolingual", direction, lang, k)
                if m2.size:
                    report.secondary[(arm, direction, lang, k)] = _cell(m2, p2, boot_seed)
        mat, photos, _ = hits.matrix(tower, arm, found[arm], "multilingual", "t2i", "all", PRIMARY_K)
        if mat.size:
            report.multilingual[arm] = _cell(mat, photos, boot_seed)
    for arm in present:
        if arm == TRANSLATE_TEST:
            continue
        for mode, targets, p in cs_cells:
            mat, photos, _ = hits.matrix(tower, arm, found[arm], "cs-queries", "t2i", "en", PRIMARY_K,
                                         cs=(mode, targets, p))
            if mat.size:
                report.cs_queries[(arm, f"{mode}:{targets} p={p:g}")] = _cell(mat, photos, boot_seed)
    f1, f2 = [], []
    for arm in present:
        if arm == "en":
            continue
        seeds = [s for s in found[arm] if s in found["en"]]
        if not seeds:
            continue
        gains: dict[str, pd.DataFrame] = {}
        for lang in langs:
            a, photos, ids = hits.matrix(tower, arm, seeds, "monolingual", "t2i", lang, PRIMARY_K)
            b, photos_b, ids_b = hits.matrix(tower, "en", seeds, "monolingual", "t2i", lang, PRIMARY_K)
            if not a.size or not b.size:
                continue
            pos_a, pos_b = {q: i for i, q in enumerate(ids)}, {q: i for i, q in enumerate(ids_b)}
            common = sorted(set(pos_a) & set(pos_b))
            ia, ib = [pos_a[q] for q in common], [pos_b[q] for q in common]
            est = paired_difference(a[ia], b[ib], photos[ia], seed=boot_seed, n_resamples=N_BOOT)
            f1.append((arm, lang, est))
            gains[lang] = _per_photo(a[ia] - b[ib], photos[ia])
            if lang == "en":
                report.english.append(EnglishCost(arm, est, equivalence_test(est, ENGLISH_MARGIN)))
            if ("en", lang) not in report.primary or ("en", "en") not in report.primary:
                continue
            base = report.primary[("en", lang)].estimate.value
            report.closure[(arm, lang)] = gap_closure(report.primary[(arm, lang)].estimate.value, base,
                                                      report.primary[("en", "en")].estimate.value)
        close = [gains[x] for x in CLOSE_LANGS if x in gains]
        distant = [gains[x] for x in DISTANT_LANGS if x in gains]
        if close and distant:
            diff = sum(distant) / len(distant) - sum(close) / len(close)
            diff = diff.dropna()
            est = cluster_bootstrap(diff.to_numpy(), diff.index.to_numpy(), seed=boot_seed, n_resamples=N_BOOT,
                                    scale=100.0)
            f2.append((arm, "distant - close", est))
    p1 = adjust_tested([e.p_value for _, _, e in f1])
    report.f1 = [Test(arm, lang, est, float(p), "F1") for (arm, lang, est), p in zip(f1, p1)]
    p2 = adjust_tested([e.p_value for _, _, e in f2])
    report.f2 = [Test(arm, target, est, float(p), "F2") for (arm, target, est), p in zip(f2, p2)]
    return report


def _add_lang_share(store, runs: _Runs, towers: list[TowerReport]) -> None:
    """Multilingual gallery: each language's share of the top-1 image->text hits, mean and sd over seeds."""
    owner = {run_id: key for key, seeds in runs.ids.items() for run_id in seeds.values()}
    if not owner:
        return
    rows = store.load(include_reference=False)
    share = rows[(rows["metric"] == "lang_share") & rows["run_id"].isin(set(owner))]
    by_tower = {t.tower: t for t in towers}
    for (run_tower, arm), part in share.groupby(share["run_id"].map(owner)):
        report = by_tower.get(run_tower)
        if report is None:
            continue
        for lang, cell in part.groupby("doc_lang"):
            values = cell["value"].to_numpy(float)
            report.lang_share[(arm, str(lang))] = (float(values.mean()),
                                                   float(values.std(ddof=1)) if len(values) > 1 else math.nan)


def _bli_facts(log_path: Path) -> dict[str, tuple[float, int]]:
    """BLI precision@1 of the induced lexicons, as the training log recorded them (identical for every seed)."""
    if not log_path.is_file():
        return {}

    out: dict[str, tuple[float, int]] = {}
    for entry in _io.read_json_file(log_path, "training log").values():
        for lang, p in (entry.get("bli_p_at_1") or {}).items():
            out[lang] = (float(p), int((entry.get("bli_n") or {}).get(lang, 0)))
    return out


def build_report(store, run_set: str = "experiment-2", towers: Sequence[str] = ("e5", "minilm")) -> DesignReport:
    """Every declared analysis of `run_set` from the stored runs (whatever part of the grid has finished)."""
    from csr_core.training.designs import DESIGNS

    design = next(d for d in DESIGNS.values() if d.run_set == run_set)
    runs = _find(store, run_set, top_layers=design.top_layers)
    hits = _Hits(store, runs)
    langs = [lang for lang in design.test_langs]
    cells = cs_query_cells(design.cs_langs)
    tower_reports = [_tower(hits, tower, design.arms, langs, cells) for tower in towers]
    _add_lang_share(store, runs, tower_reports)
    chosen = {m["run_id"]: m for m in runs.manifests}
    used_manifests = [chosen[r] for seeds in runs.ids.values() for r in seeds.values()]
    commits = sorted({str(m.get("git_sha", ""))[:8] for m in used_manifests})
    dirty = sum(bool(m.get("git_dirty")) for m in used_manifests)
    used = {run_id for seeds in runs.ids.values() for run_id in seeds.values()}  # newest per (tower, arm, seed)
    bli = _bli_facts(Path(store.root) / run_set / "training_log.json") if run_set else {}
    return DesignReport(run_set, list(design.seeds), list(design.arms), [t for t in tower_reports if t.arms],
                        [c for c in commits if c], dirty, len(used), design.top_layers, bli)


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


HEADLINE_ARMS = ("mlcs-de-fr-pt-zh-ar", "mix-mlcs-de-fr-pt-zh-ar", "noise-mlcs-de-fr-pt-zh-ar", "tt-de-fr-pt-zh-ar")


def lang_order(langs: Sequence[str]) -> list[str]:
    """English, then close, between and distant languages: the one order of every table and chart
    (`csr_core.languages.display_order`)."""
    from csr_core.languages import display_order

    return display_order(langs)


def delta_frame(tower: TowerReport, arms: Sequence[str] | None = None) -> pd.DataFrame:
    """Family F1 as a tidy table (arm, lang, group, delta, ci_low, ci_high, p_holm, mde) in the shared language order;
    `arms` None: the headline arms present (else every tested arm)."""
    tested = list(dict.fromkeys(t.arm for t in tower.f1))
    chosen = [a for a in (arms or HEADLINE_ARMS) if a in tested] or tested
    order = {x: i for i, x in enumerate(lang_order(tower.langs))}
    rows = [{"arm": t.arm, "lang": t.target,
             "group": ("close" if t.target in CLOSE_LANGS else "distant" if t.target in DISTANT_LANGS
                       else "between" if t.target in BETWEEN_LANGS else "English"),
             "delta": t.estimate.value, "ci_low": t.estimate.low, "ci_high": t.estimate.high,
             "p_holm": t.p_adjusted, "mde": t.mde, "seeds": t.estimate.n_seeds}
            for t in tower.f1 if t.arm in chosen]
    frame = pd.DataFrame(rows, columns=["arm", "lang", "group", "delta", "ci_low", "ci_high", "p_holm", "mde",
                                        "seeds"])
    return frame.sort_values(["lang", "arm"], key=lambda c: c.map(order) if c.name == "lang" else c.map(
        {a: i for i, a in enumerate(chosen)})).reset_index(drop=True)


def primary_frame(tower: TowerReport) -> pd.DataFrame:
    """The primary table as tidy rows (arm, lang, value, ci_low, ci_high, seeds, seed_sd) for heatmaps and exports."""
    rows = [{"arm": a, "lang": x, "value": c.estimate.value, "ci_low": c.estimate.low, "ci_high": c.estimate.high,
             "seeds": c.estimate.n_seeds, "seed_sd": c.seed_sd, "n_queries": c.estimate.n_queries}
            for (a, x), c in tower.primary.items()]
    return pd.DataFrame(rows, columns=["arm", "lang", "value", "ci_low", "ci_high", "seeds", "seed_sd", "n_queries"])


def leaderboard(report: DesignReport) -> pd.DataFrame:
    """One row per tower x arm; per language x direction x K the mean over seeds (± sd over seeds), then the means
    over the close and over the distant languages at the primary metric -- in the spirit of CLIP_benchmark's and
    open_clip's results tables, from the report's own facts."""
    records = []
    for t in report.towers:
        langs = lang_order(t.langs)
        for arm in t.arms:
            row: dict[str, object] = {"tower": t.tower, "arm": arm, "seeds": len(t.seeds.get(arm, []))}
            for direction in ("t2i", "i2t"):
                for k in (1, 5, 10):
                    for lang in langs:
                        cell = (t.primary.get((arm, lang)) if (direction, k) == ("t2i", PRIMARY_K)
                                else t.secondary.get((arm, direction, lang, k)))
                        row[f"{direction} R@{k} {lang}"] = round(cell.estimate.value, 1) if cell else math.nan
                        row[f"{direction} R@{k} {lang} sd"] = (round(cell.seed_sd, 1) if cell and
                                                               math.isfinite(cell.seed_sd) else math.nan)
            for group, members in (("close", CLOSE_LANGS), ("distant", DISTANT_LANGS)):
                values = [t.primary[(arm, x)].estimate.value for x in members if (arm, x) in t.primary]
                row[f"t2i R@{PRIMARY_K} {group} mean"] = round(float(np.mean(values)), 1) if values else math.nan
            records.append(row)
    return pd.DataFrame(records)


def experiment_run_sets() -> frozenset[str]:
    """Run sets that belong to a declared experiment (their runs are evidence; views of single runs leave them out)."""
    from csr_core.training.designs import DESIGNS

    return frozenset(d.run_set for d in DESIGNS.values() if d.run_set)


# ---- the facts as JSON (the dashboard reads them; the README is rendered from the same object) -----------------------

FACTS_VERSION = 1


def _est(d: dict) -> Estimate:
    return Estimate(**d)


def to_json(report: DesignReport) -> dict:
    """A plain-JSON form of the report: tuple-keyed tables become lists of records."""
    from dataclasses import asdict

    towers = []
    for t in report.towers:
        towers.append({
            "tower": t.tower, "arms": t.arms, "seeds": t.seeds, "langs": t.langs,
            "primary": [{"arm": a, "lang": x, **asdict(c)} for (a, x), c in t.primary.items()],
            "secondary": [{"arm": a, "direction": d, "lang": x, "k": k, **asdict(c)}
                          for (a, d, x, k), c in t.secondary.items()],
            "f1": [asdict(x) for x in t.f1], "f2": [asdict(x) for x in t.f2],
            "english": [asdict(x) for x in t.english],
            "closure": [{"arm": a, "lang": x, "value": v} for (a, x), v in t.closure.items()],
            "multilingual": [{"arm": a, **asdict(c)} for a, c in t.multilingual.items()],
            "lang_share": [{"arm": a, "lang": x, "mean": m, "sd": sd} for (a, x), (m, sd) in t.lang_share.items()],
            "cs_queries": [{"arm": a, "cell": c, **asdict(v)} for (a, c), v in t.cs_queries.items()],
        })
    return {"facts_version": FACTS_VERSION, "run_set": report.run_set, "design_seeds": report.design_seeds,
            "design_arms": report.design_arms, "commits": report.commits, "dirty_runs": report.dirty_runs,
            "n_runs": report.n_runs, "top_layers": report.top_layers,
            "bli": {lang: list(v) for lang, v in report.bli.items()}, "towers": towers}


def from_json(data: dict) -> DesignReport:
    """The inverse of `to_json` (raises DataError on another facts version)."""
    from csr_core.errors import DataError

    if data.get("facts_version") != FACTS_VERSION:
        raise DataError(f"experiment report facts version {data.get('facts_version')!r}, expected {FACTS_VERSION}; "
                        "regenerate them with `python -m csr_core experiment --design experiment-2 --report-only`")
    towers = []
    for t in data["towers"]:
        cell = lambda r: Cell(_est(r["estimate"]), r["seed_sd"])  # noqa: E731
        tr = TowerReport(t["tower"], list(t["arms"]), {a: list(s) for a, s in t["seeds"].items()}, list(t["langs"]))
        tr.primary = {(r["arm"], r["lang"]): cell(r) for r in t["primary"]}
        tr.secondary = {(r["arm"], r["direction"], r["lang"], int(r["k"])): cell(r) for r in t["secondary"]}
        tr.f1 = [Test(r["arm"], r["target"], _est(r["estimate"]), r["p_adjusted"], r["family"]) for r in t["f1"]]
        tr.f2 = [Test(r["arm"], r["target"], _est(r["estimate"]), r["p_adjusted"], r["family"]) for r in t["f2"]]
        tr.english = [EnglishCost(r["arm"], _est(r["estimate"]), r["tost"]) for r in t["english"]]
        tr.closure = {(r["arm"], r["lang"]): float(r["value"]) for r in t["closure"]}
        tr.multilingual = {r["arm"]: cell(r) for r in t["multilingual"]}
        tr.lang_share = {(r["arm"], r["lang"]): (float(r["mean"]), float(r["sd"])) for r in t.get("lang_share", [])}
        tr.cs_queries = {(r["arm"], r["cell"]): cell(r) for r in t.get("cs_queries", [])}
        towers.append(tr)
    return DesignReport(data["run_set"], list(data["design_seeds"]), list(data["design_arms"]), towers,
                        list(data["commits"]), int(data["dirty_runs"]), int(data["n_runs"]),
                        int(data.get("top_layers", 0)),
                        {lang: (float(v[0]), int(v[1])) for lang, v in data.get("bli", {}).items()})
