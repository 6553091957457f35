"""results/experiment-1.md for the first fine-tuning experiment, computed from the stored runs' per-query ranks.

Statistics (documented in the README it writes):
- a cell is the mean over seeds of R@K; its 95% CI is a percentile bootstrap over queries of the per-query hit rate
  averaged over seeds (so it carries query sampling, with the seeds folded in); "sd" is the across-seed standard
  deviation of R@K (training-seed spread);
- Delta vs EN-only pairs each query with itself: d_q = mean_s hit(arm, s, q) - mean_s hit(en, s, q) (seed s of an arm
  is paired with seed s of EN-only: same photos, batches and caption draws); 95% bootstrap CI of mean d_q; a paired
  permutation test (sign flips of d_q); Holm correction within each family = one arm-vs-EN comparison (one tower,
  direction and K) over its 4 languages -- the convention of `csr_core.analysis.compare_runs`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from csr_core.metrics import hits_at_k
from csr_core.model_names import CsrMiniName
from csr_core.stats import adjust_tested, bootstrap_ci, paired_test

TOWER_LABEL = {"minilm": "MiniLM (English-only text tower) = csr-mini", "e5": "multilingual-e5-small = csr-mini-m"}
LANGS = ("en", "de", "fr", "cs")
XTD_LANGS = ("de", "fr", "es", "it", "ru", "zh", "ko", "tr", "pl")
SEEN = ("de", "fr", "cs")
PROTOTYPE = {  # planning prototype: 300 held-out photos, one seed, t2i R@10 (DESIGN.md / issue 6)
    ("minilm", "en"): {"en": 34.7, "de": 5.3, "fr": 5.3, "cs": 3.0},
    ("minilm", "mlcs-de-fr-cs"): {"en": 30.0, "de": 11.7, "fr": 12.7, "cs": 8.0},
    ("e5", "en"): {"en": 30.0, "de": 17.7, "fr": 19.0, "cs": 12.3},
    ("e5", "mlcs-de-fr-cs"): {"en": 27.3, "de": 18.0, "fr": 21.0, "cs": 18.3},
}
N_BOOT = 2000
EXPERIMENT_1_REPORT = "experiment-1.md"


@dataclass
class RunRef:
    run_id: str
    tower: str
    arm: str
    seed: int
    dataset: str


def find_runs(store, run_set: str = "") -> list[RunRef]:
    """The run set's runs whose model is an explicit csr-mini arm/seed name (the first experiment's: run set "");
    the newest run wins per (model, dataset)."""
    latest: dict[tuple[str, str], RunRef] = {}
    for manifest in store.runs():  # oldest first
        params = manifest.get("params", {})
        if params.get("run_set", "") != run_set:
            continue
        model = str(params.get("model", ""))
        name = CsrMiniName.try_parse(model)
        if name is None or name.top_layers or name.explicit != model or not params.get("train_arm"):
            continue  # only explicit heads-only names: `csr-mini:<arm>/s<seed>`
        ref = RunRef(manifest["run_id"], name.tower, name.arm, name.seed, params.get("dataset", ""))
        latest[(params["model"], ref.dataset)] = ref
    return list(latest.values())


def find_top_runs(store) -> list[tuple[str, int, int, str]]:
    """(arm, seed, layers, run_id) of MiniLM runs with trained top layers (newest per model)."""
    latest: dict[str, tuple[str, int, int, str]] = {}
    for manifest in store.runs():
        model = str(manifest.get("params", {}).get("model", ""))
        name = CsrMiniName.try_parse(model)
        if (name and name.tower == "minilm" and name.top_layers
                and manifest.get("params", {}).get("dataset") == "flickr8k-multi30k"):
            latest[model] = (name.arm, name.seed, name.top_layers, manifest["run_id"])
    return sorted(latest.values())


class RankBook:
    """Per-query hit vectors of every run, aligned on query ids across runs."""

    def __init__(self, store, refs: Iterable[RunRef]):
        self.store = store
        self.refs = list(refs)
        self._ranks: dict[str, pd.DataFrame] = {}

    def ranks(self, run_id: str) -> pd.DataFrame:
        if run_id not in self._ranks:
            self._ranks[run_id] = self.store.load_ranks(run_id)
        return self._ranks[run_id]

    def seeds(self, tower: str, arm: str, dataset: str) -> dict[int, str]:
        return {r.seed: r.run_id for r in self.refs if (r.tower, r.arm, r.dataset) == (tower, arm, dataset)}

    def hits(self, run_id: str, k: int, **where) -> pd.Series:
        """Hit (0/1) per query id for the rank rows matching `where` (cs_p matched with isclose)."""
        frame = self.ranks(run_id)
        mask = np.ones(len(frame), dtype=bool)
        for key, value in where.items():
            if key == "cs_p":
                col = frame["cs_p"].astype(float)
                mask &= np.isnan(col) if value is None else np.isclose(col, value)
            else:
                mask &= (frame[key].fillna("") == value).to_numpy()
        sel = frame[mask]
        if sel.empty:
            return pd.Series(dtype=float)
        return pd.Series(hits_at_k(sel["rank"].to_numpy(), k).astype(float), index=sel["query_id"].to_numpy())

    def seed_matrix(self, tower: str, arm: str, dataset: str, k: int, seeds: Sequence[int] | None = None,
                    **where) -> pd.DataFrame:
        """queries x seeds hit matrix (only queries present in every seed)."""
        runs = self.seeds(tower, arm, dataset)
        cols = {s: self.hits(runs[s], k, **where) for s in sorted(runs) if seeds is None or s in seeds}
        cols = {s: v for s, v in cols.items() if len(v)}  # a seed without this setting (e.g. cs-queries) is skipped
        if not cols:
            return pd.DataFrame()
        return pd.DataFrame(cols).dropna()


def _fmt(x: float, nd: int = 1) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def cell_stats(matrix: pd.DataFrame, seed: int = 0, ci: bool = True) -> dict[str, float]:
    """Mean over seeds of R@K, bootstrap CI over queries of the seed-averaged hits (unless `ci=False`), seed sd."""
    if matrix.empty:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "sd": float("nan"), "n": 0,
                "seeds": 0}
    per_query = 100.0 * matrix.mean(axis=1).to_numpy()
    per_seed = 100.0 * matrix.mean(axis=0).to_numpy()
    low, high = bootstrap_ci(per_query, seed=seed, n_resamples=N_BOOT) if ci else (float("nan"), float("nan"))
    return {"mean": float(per_query.mean()), "low": low, "high": high,
            "sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else float("nan"), "n": len(per_query),
            "seeds": matrix.shape[1]}


def delta_stats(arm: pd.DataFrame, base: pd.DataFrame, seed: int = 0) -> dict[str, float]:
    """Paired (same queries, same seeds) difference arm - base in R@K points, CI and permutation p-value."""
    seeds = sorted(set(arm.columns) & set(base.columns))
    if not seeds:
        return {"delta": float("nan"), "low": float("nan"), "high": float("nan"), "p": float("nan"), "n": 0,
                "seeds": 0}
    joined = arm[seeds].join(base[seeds], lsuffix="_a", rsuffix="_b", how="inner")
    a = joined[[f"{s}_a" for s in seeds]].mean(axis=1).to_numpy()
    b = joined[[f"{s}_b" for s in seeds]].mean(axis=1).to_numpy()
    d = 100.0 * (a - b)
    low, high = bootstrap_ci(d, seed=seed, n_resamples=N_BOOT) if np.any(d != d[0]) else (float(d[0]), float(d[0]))
    p = paired_test(a, b, method="permutation", seed=seed, n_resamples=9999).p_value
    return {"delta": float(d.mean()), "low": low, "high": high, "p": p, "n": len(d), "seeds": len(seeds)}


def _holm(records: list[dict]) -> None:
    for r, q in zip(records, adjust_tested([r["p"] for r in records], method="holm")):
        r["p_holm"] = float(q)


class Report:
    """Computes every table once; `markdown()` renders them with the plain-language answers."""

    def __init__(self, store, heads_dir: Path | None = None, expected: dict | None = None):
        self.store = store
        self.refs = find_runs(store)
        self.book = RankBook(store, self.refs)
        self.heads_dir = heads_dir
        self.towers = [t for t in ("minilm", "e5") if any(r.tower == t for r in self.refs)]
        self.arms = _ordered_arms({r.arm for r in self.refs})
        self.expected = expected or {}
        self.cells: dict[tuple, dict] = {}
        self.deltas: dict[tuple, list[dict]] = {}

    # ---- numbers -----------------------------------------------------------------------------------------------
    def mono(self, tower: str, arm: str, lang: str, direction: str, k: int) -> dict:
        key = ("mono", tower, arm, lang, direction, k)
        if key not in self.cells:
            where: dict[str, Any] = dict(setting="monolingual", direction=direction, cs_mode="")
            where.update({"query_lang": lang} if direction == "t2i" else {"doc_lang": lang})
            m = self.book.seed_matrix(tower, arm, "flickr8k-multi30k", k, **where)
            self.cells[key] = cell_stats(m)
        return self.cells[key]

    def mono_matrix(self, tower: str, arm: str, lang: str, direction: str, k: int) -> pd.DataFrame:
        where: dict[str, Any] = dict(setting="monolingual", direction=direction, cs_mode="")
        where.update({"query_lang": lang} if direction == "t2i" else {"doc_lang": lang})
        return self.book.seed_matrix(tower, arm, "flickr8k-multi30k", k, **where)

    def delta_family(self, tower: str, direction: str, k: int) -> list[dict]:
        """Delta vs EN-only for every arm x language of one tower; Holm over the languages of each arm."""
        key = ("delta", tower, direction, k)
        if key not in self.deltas:
            records = []
            bases = {lang: self.mono_matrix(tower, "en", lang, direction, k) for lang in LANGS}
            for arm in self.arms:
                family = []
                for lang in LANGS:
                    if arm == "en" or bases[lang].empty:
                        continue
                    m = self.mono_matrix(tower, arm, lang, direction, k)
                    if m.empty:
                        continue
                    family.append({"arm": arm, "lang": lang, **delta_stats(m, bases[lang])})
                _holm(family)
                records += family
            self.deltas[key] = records
        return self.deltas[key]

    def delta(self, tower: str, arm: str, lang: str, direction: str = "t2i", k: int = 10) -> dict | None:
        for r in self.delta_family(tower, direction, k):
            if r["arm"] == arm and r["lang"] == lang:
                return r
        return None

    def cross(self, tower: str, arm: str, dataset: str, q: str, d: str, k: int) -> dict:
        key = ("cross", tower, arm, dataset, q, d, k)
        if key not in self.cells:
            m = self.book.seed_matrix(tower, arm, dataset, k, setting="cross", query_lang=q, doc_lang=d,
                                      direction="t2t", cs_mode="")
            self.cells[key] = cell_stats(m, ci=False)
        return self.cells[key]

    def cs_query(self, tower: str, arm: str, mode: str, langs: str, p: float, k: int) -> dict:
        key = ("csq", tower, arm, mode, langs, p, k)
        if key not in self.cells:
            m = self.book.seed_matrix(tower, arm, "flickr8k-multi30k", k, setting="cs-queries", cs_mode=mode,
                                      cs_langs=langs, cs_p=p)
            self.cells[key] = cell_stats(m, ci=False)
        return self.cells[key]

    def training_log(self) -> dict:
        if self.heads_dir is None:
            return {}
        path = Path(self.heads_dir) / "training_log.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    # ---- rendering ---------------------------------------------------------------------------------------------
    def markdown(self) -> str:
        from csr_core.training.report_text import render

        return render(self)


def _ordered_arms(arms: set[str]) -> list[str]:
    from csr_core.training.arms import ALL_ARMS

    known = [a for a in ALL_ARMS if a in arms]
    return known + sorted(arms - set(known))


def write_report(results_dir: str | Path | None = None, heads_dir: str | Path | None = None,
                 out: str | Path | None = None, expected: dict | None = None) -> Path:
    """Compute the report from the store and write it (default: `<results>/experiment-1.md`)."""
    from csr_core.encoders.csr_mini import HEADS_DIR
    from csr_core.results import ResultsStore

    store = ResultsStore(Path(results_dir) if results_dir else None)
    report = Report(store, Path(heads_dir) if heads_dir else HEADS_DIR, expected=expected)
    text = report.markdown()
    target = Path(out) if out else Path(store.root) / EXPERIMENT_1_REPORT
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target
