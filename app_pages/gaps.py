"""Gaps vs typology: the gap to English per language against URIEL distance, and close vs distant groups."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from csr_core import viz
from csr_core.analysis import group_contrast
from csr_core.dashboard_state import Param, pick
from csr_core.errors import CSRError
from app_pages._ui import (empty_results_message, load_ranks, load_rows, publish_to_url, remember, restore,
                       seed_from_url, show_chart, valid_choice, with_series)

KINDS = ("genetic", "syntactic", "featural", "phonological", "inventory", "geographic")
KEYS = ("gp_dataset", "gp_direction", "gp_k", "gp_kind", "gp_series", "gp_grouping", "gp_threshold")
SCHEMA = {"dataset": Param("str", ""), "direction": Param("str", "t2i", ("t2i", "i2t")), "k": Param("int", 10, lo=1),
          "kind": Param("str", "genetic", KINDS), "grouping": Param("str", "paper", ("paper", "threshold")),
          "threshold": Param("float", 0.8, lo=0.0, hi=1.0)}
restore(KEYS)
seed_from_url(SCHEMA, {"dataset": "gp_dataset", "direction": "gp_direction", "k": "gp_k", "kind": "gp_kind",
                       "grouping": "gp_grouping", "threshold": "gp_threshold"})

st.title("Gaps vs typology")
st.caption("gap = R@K(EN) − R@K(X) on the same (translated) queries, with paired bootstrap CIs. Is the gap larger "
           "for languages typologically far from English?")


@st.cache_data(show_spinner="Reading URIEL distances…")
def _distances(langs: tuple[str, ...], kind: str) -> pd.DataFrame:
    from csr_core.languages import distance_table

    return distance_table(langs, pivot="en", kinds=(kind,))


@st.cache_data(show_spinner=False, max_entries=64)
def _gaps(run_id: str, _ranks: pd.DataFrame, k: int, direction: str) -> pd.DataFrame:
    """Runs are append-only, so the run id is a sufficient cache key for its ranks."""
    from csr_core.analysis import language_gaps

    return language_gaps(_ranks, k=k, setting="monolingual", direction=direction, pivot="en")


rows = load_rows()
if rows is None:
    st.stop()
mono = rows[(rows["setting"] == "monolingual") & (rows["metric"] == "recall") & (rows["source"] == "ours")]
if mono.empty:
    empty_results_message() if rows.empty else st.info("No monolingual runs of our own yet: gaps need per-query "
                                                       "ranks (reference numbers have none).")
    st.stop()

c1, c2, c3, c4 = st.columns(4)
datasets = sorted(mono["dataset"].unique())
valid_choice("gp_dataset", datasets, datasets[-1])
dataset = c1.selectbox("Dataset", datasets, key="gp_dataset")
part = with_series(mono[mono["dataset"] == dataset])
directions = [d for d in ("t2i", "i2t") if d in set(part["direction"])]
valid_choice("gp_direction", directions, pick("t2i", directions))
direction = c2.selectbox("Direction", directions, key="gp_direction")
ks = sorted(int(k) for k in part["k"].unique())
valid_choice("gp_k", ks, pick(10, ks))
k = int(c3.selectbox("K", ks, key="gp_k"))
st.session_state.setdefault("gp_kind", "genetic")
kind = c4.selectbox("URIEL distance", KINDS, key="gp_kind")
series_options = sorted(part["series"].unique())
valid_choice("gp_series", series_options, series_options[-3:])
chosen = st.multiselect("Models / arms", series_options, key="gp_series")
if not chosen:
    st.info("Pick at least one model or arm.")
    st.stop()

gap_frames = []
for label in chosen:
    run_id = str(part.loc[part["series"] == label, "run_id"].iloc[0])
    ranks = load_ranks(run_id)
    if ranks is None:
        continue
    try:
        gaps = _gaps(run_id, ranks, k, direction)
    except CSRError as error:
        st.warning(f"{label}: {error}")
        continue
    gap_frames.append(gaps.assign(series=label, run_id=run_id))
gaps = pd.concat(gap_frames, ignore_index=True) if gap_frames else pd.DataFrame()
if gaps.empty:
    st.info("No language besides English in these runs: nothing to compare.")
    st.stop()

langs = tuple(sorted(set(gaps["lang"])))
try:
    distances = _distances(langs, kind)
except CSRError as error:
    st.error(f"URIEL distances are not available: {error}")
    st.stop()
gaps["distance"] = [float(distances[kind].get(lang, math.nan)) if lang in distances.index else math.nan
                    for lang in gaps["lang"]]
missing = sorted(set(gaps.loc[gaps["distance"].isna(), "lang"]))
table = gaps[["series", "lang", "distance", "gap", "ci_low", "ci_high", "pivot_value", "lang_value", "n", "p_holm",
              "run_id"]]
chart = viz.gap_scatter(table, kind=kind, title=f"{dataset}: gap to EN at R@{k} ({direction}) vs URIEL {kind} "
                                                 "distance")
if missing:
    chart.notes.append(f"no URIEL {kind} distance for {', '.join(missing)} (left off the plot)")
show_chart(chart, "gp_scatter", f"gaps_{dataset}_{direction}_r{k}_{kind}")

from csr_core.languages import gap_correlation  # noqa: E402

corr_rows = []
for label, frame in gaps.groupby("series", sort=False):
    result = gap_correlation(dict(zip(frame["lang"], frame["gap"])), kind=kind)
    corr_rows.append({"series": label, "languages": result.n, "pearson r": result.pearson_r,
                      "pearson p": result.pearson_p, "spearman ρ": result.spearman_rho,
                      "spearman p": result.spearman_p, "note": result.note})
corr = pd.DataFrame(corr_rows)
st.markdown("**Correlation of gap with distance** (Pearson / Spearman, two-sided p)")
st.dataframe(corr, key="gp_corr", hide_index=True)
st.download_button("CSV", corr.to_csv(index=False).encode("utf-8"), key="gp_corr_csv",
                   file_name=f"gap_correlation_{dataset}_{kind}.csv", mime="text/csv")

# ---- close vs distant --------------------------------------------------------------------------------------------
st.subheader("Close vs distant languages")
from csr_core.languages import PAPER_GROUPS, group_languages  # noqa: E402

g1, g2 = st.columns(2)
st.session_state.setdefault("gp_grouping", "paper")
grouping = g1.radio("Grouping", ("paper", "threshold"), key="gp_grouping", horizontal=True,
                    format_func={"paper": "paper's groups", "threshold": f"URIEL {kind} threshold"}.get)
st.session_state.setdefault("gp_threshold", 0.8)
threshold = g2.slider("Distance threshold (≤ close)", 0.0, 1.0, step=0.05, key="gp_threshold",
                      disabled=grouping != "threshold")
if grouping == "paper":
    st.caption("Paper groups: close " + ", ".join(PAPER_GROUPS["close"]) + "; distant " +
               ", ".join(PAPER_GROUPS["distant"]) + ". Other languages are 'unknown' (left out).")
groups = group_languages(langs, threshold=None if grouping == "paper" else threshold, kind=kind)
st.caption("This selection: " + "; ".join(f"{lang} → {grp}" for lang, grp in groups.items()))
bars, tests = [], []
for label in chosen:
    run_id = str(part.loc[part["series"] == label, "run_id"].iloc[0])
    ranks = load_ranks(run_id)
    if ranks is None:
        continue
    try:
        frame, test = group_contrast(ranks, groups, k=k, direction=direction)
    except (CSRError, ValueError) as error:
        st.warning(f"{label}: close vs distant cannot be compared ({error})")
        continue
    bars.append(frame.assign(series=label))
    tests.append({"series": label, "gap close − gap distant": test["diff"], "p_value": test["p_value"],
                  "queries": test["n"], "note": test["note"]})
group_table = pd.concat(bars, ignore_index=True) if bars else pd.DataFrame(columns=["group", "value", "series"])
show_chart(viz.group_bars(group_table, title=f"Gap to EN by language group, R@{k} ({direction})"), "gp_groups",
           f"gap_groups_{dataset}_{direction}_r{k}")
tests_table = pd.DataFrame(tests)
st.dataframe(tests_table, key="gp_tests", hide_index=True)
st.download_button("CSV", tests_table.to_csv(index=False).encode("utf-8"), key="gp_tests_csv",
                   file_name=f"gap_groups_test_{dataset}.csv", mime="text/csv")

publish_to_url(SCHEMA, {"dataset": dataset, "direction": direction, "k": k, "kind": kind, "grouping": grouping,
                        "threshold": threshold})
remember(KEYS)
