"""Gaps vs typology: the gap to English per language against URIEL distance, close vs distant groups, and the
cross-lingual pairs of a run against the distance between the pair's languages (`python -m csr_core gaps`)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from csr_core import viz
from csr_core.dashboard_state import Param, pick
from csr_core.errors import CSRError
from csr_core.gap_views import GapView, default_series, gap_view
from csr_core.languages import DEFAULT_GROUPS, DISTANCE_KINDS, base_lang, parse_group_overrides
from app_pages._ui import (empty_results_message, load_ranks, load_rows, load_runs, publish_to_url, remember,
                           restore, seed_from_url, show_chart, valid_choice, with_series)

KINDS = DISTANCE_KINDS
KEYS = ("gp_dataset", "gp_direction", "gp_k", "gp_kind", "gp_series", "gp_grouping", "gp_threshold", "gp_overrides",
        "gp_pair_series")
SCHEMA = {"dataset": Param("str", ""), "direction": Param("str", "t2i", ("t2i", "i2t")), "k": Param("int", 10, lo=1),
          "kind": Param("str", "genetic", KINDS), "grouping": Param("str", "default", ("default", "threshold")),
          "threshold": Param("float", 0.8, lo=0.0, hi=1.0), "groups": Param("str", "")}
restore(KEYS)
seed_from_url(SCHEMA, {"dataset": "gp_dataset", "direction": "gp_direction", "k": "gp_k", "kind": "gp_kind",
                       "grouping": "gp_grouping", "threshold": "gp_threshold", "groups": "gp_overrides"})

st.title("Gaps vs typology")
st.caption("gap = R@K(EN) − R@K(X), in points, with paired bootstrap CIs: query by query where X's captions translate "
           "the English ones line by line, else photo by photo (each photo's mean hit over its captions in X), since "
           "every language retrieves the same photos. Is the gap larger for languages typologically far from English?")


@st.cache_data(show_spinner=False, max_entries=64)
def _view(run_id: str, _ranks: pd.DataFrame, _manifest: dict, k: int, direction: str, kind: str,
          threshold: float | None, overrides: tuple[tuple[str, str], ...]) -> GapView:
    """Runs are append-only, so the run id (with the view's settings) is a sufficient cache key."""
    return gap_view(_ranks, _manifest, k=k, direction=direction, kind=kind, threshold=threshold,
                    overrides=dict(overrides))


@st.cache_data(show_spinner=False, max_entries=32)
def _pairs(run_id: str, _ranks: pd.DataFrame, k: int, kind: str):
    from csr_core.pairs import analyse_pairs

    return analyse_pairs(_ranks, k=k, kind=kind)


rows = load_rows()
if rows is None:
    st.stop()
mono = rows[(rows["setting"] == "monolingual") & (rows["metric"] == "recall") & (rows["source"] == "ours")]
if mono.empty:
    if rows.empty:
        empty_results_message()
    else:
        st.info("No monolingual runs of our own yet: gaps need per-query ranks (reference numbers have none).")
    st.stop()
manifests = {str(m["run_id"]): m for m in load_runs()}

c1, c2, c3, c4 = st.columns(4)
datasets = sorted(mono["dataset"].unique())
valid_choice("gp_dataset", datasets, pick("flickr8k-multi30k", datasets))
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
valid_choice("gp_series", series_options, default_series(part))
chosen = st.multiselect("Models / arms", series_options, key="gp_series",
                        help="Opens on the runs with the most languages, EN-only arms first.")

g1, g2, g3 = st.columns([1, 1, 2])
st.session_state.setdefault("gp_grouping", "default")
grouping = g1.radio("Grouping", ("default", "threshold"), key="gp_grouping", horizontal=True,
                    format_func={"default": "default groups", "threshold": f"URIEL {kind} threshold"}.get)
st.session_state.setdefault("gp_threshold", 0.8)
threshold = g2.slider("Distance threshold (≤ close)", 0.0, 1.0, step=0.05, key="gp_threshold",
                      disabled=grouping != "threshold")
st.session_state.setdefault("gp_overrides", "")
overrides_text = g3.text_input("Overrides", key="gp_overrides", placeholder="cs=close, pl=between",
                               help="language=group (close, between, distant, unknown); wins over the rule")
if grouping == "default":
    st.caption("Default groups: close " + ", ".join(DEFAULT_GROUPS["close"]) + "; between "
               + ", ".join(DEFAULT_GROUPS["between"]) + "; distant " + ", ".join(DEFAULT_GROUPS["distant"])
               + " (the paper's, with Czech between: genetically as far from English as French, syntactically "
                 "further than any close language). Other languages are 'unknown' (left out of the contrast).")
try:
    overrides = parse_group_overrides(overrides_text)
except CSRError as error:
    st.error(str(error))
    overrides = {}
if not chosen:
    st.info("Pick at least one model or arm.")
    st.stop()

views: dict[str, GapView] = {}
for label in chosen:
    run_id = str(part.loc[part["series"] == label, "run_id"].iloc[0])
    ranks = load_ranks(run_id)
    if ranks is None:
        continue
    try:
        views[label] = _view(run_id, ranks, manifests.get(run_id, {}), k, direction, kind,
                             None if grouping == "default" else float(threshold), tuple(sorted(overrides.items())))
    except CSRError as error:
        st.warning(f"{label}: {error}")
if not views or all(v.gaps.empty for v in views.values()):
    st.info("No language besides English in these runs: nothing to compare.")
    st.stop()

# ---- the answer first: close vs distant ----------------------------------------------------------------------------
st.subheader("Close vs distant languages")
bars, tests = [], []
for label, view in views.items():
    bars.append(view.group_table.assign(series=label))
    test = view.group_test
    tests.append({"series": label, "gap close − gap distant": test["diff"], "p_value": test["p_value"],
                  "photos": test["n"], "note": test["note"]})
group_table = pd.concat(bars, ignore_index=True)
show_chart(viz.group_bars(group_table, title=f"Gap to EN by language group, R@{k} ({direction}), paired by photo"),
           "gp_groups", f"gap_groups_{dataset}_{direction}_r{k}")
tests_table = pd.DataFrame(tests)
st.dataframe(tests_table, key="gp_tests", hide_index=True)
st.download_button("CSV", tests_table.to_csv(index=False).encode("utf-8"), key="gp_tests_csv",
                   file_name=f"gap_groups_test_{dataset}.csv", mime="text/csv")
first = next(iter(views.values()))
st.caption("This selection: " + "; ".join(f"{lang} → {grp}" for lang, grp in first.groups.items() if lang != "en"))
for note in sorted({n for v in views.values() for n in v.notes}):
    st.caption(note)

# ---- gap vs distance from English ----------------------------------------------------------------------------------
st.subheader("Gap to English vs typological distance")
gaps = pd.concat([v.gaps.assign(series=label, run_id=str(part.loc[part["series"] == label, "run_id"].iloc[0]))
                  for label, v in views.items()], ignore_index=True)
placed = gaps[[base_lang(lang) != "en" for lang in gaps["lang"]]]
chart = viz.gap_scatter(placed, kind=kind, title=f"{dataset}: gap to EN at R@{k} ({direction}) vs URIEL {kind} "
                                                  "distance")
missing = sorted(set(placed.loc[placed["distance"].isna(), "lang"]))
if missing:
    chart.notes.append(f"no URIEL {kind} distance for {', '.join(missing)} (left off the plot)")
if len(placed) < len(gaps):
    chart.notes.append("other English caption sets (" + ", ".join(sorted(set(gaps["lang"]) - set(placed["lang"])))
                       + ") are in the table below, not on the plot: their distance is 0 by construction")
show_chart(chart, "gp_scatter", f"gaps_{dataset}_{direction}_r{k}_{kind}")
st.dataframe(gaps, key="gp_gaps", hide_index=True)

corr = pd.DataFrame([{"series": label, "languages": v.correlation.n, "pearson r": v.correlation.pearson_r,
                      "pearson 95% CI": v.correlation.pearson_ci, "pearson p": v.correlation.pearson_p,
                      "spearman ρ": v.correlation.spearman_rho, "spearman 95% CI": v.correlation.spearman_ci,
                      "spearman p": v.correlation.spearman_p, "note": v.correlation.note} for label, v in views.items()])
st.markdown("**Correlation of gap with distance** (Pearson / Spearman, two-sided p, bootstrap CIs over languages)")
st.dataframe(corr.astype({"pearson 95% CI": str, "spearman 95% CI": str}), key="gp_corr", hide_index=True)
st.download_button("CSV", corr.to_csv(index=False).encode("utf-8"), key="gp_corr_csv",
                   file_name=f"gap_correlation_{dataset}_{kind}.csv", mime="text/csv")

# ---- pairs: X → Y between any two aligned languages ----------------------------------------------------------------
st.subheader("Language pairs, not only English")
st.caption("Cross-lingual text retrieval X→Y between aligned captions of any two languages; pair score = mean R@K of "
           "both directions, against the URIEL distance between X and Y. XTD10 gives 10 languages (45 pairs).")
cross = with_series(rows[(rows["setting"] == "cross") & (rows["metric"] == "recall") & (rows["source"] == "ours")])
if cross.empty:
    st.info("No cross-lingual runs of our own: run an evaluation with the 'cross' setting on aligned languages.")
else:
    cross = cross.assign(pair_series=cross["series"] + " · " + cross["dataset"])
    pair_counts = cross.groupby("pair_series")["query_lang"].nunique().sort_values(ascending=False)
    pair_options = sorted(pair_counts.index)
    valid_choice("gp_pair_series", pair_options, pick(str(pair_counts.index[0]), pair_options))
    pair_series = st.selectbox("Cross-lingual run", pair_options, key="gp_pair_series",
                               help="Opens on the run with the most aligned languages")
    pair_run = str(cross.loc[cross["pair_series"] == pair_series, "run_id"].iloc[0])
    pair_ranks = load_ranks(pair_run)
    if pair_ranks is not None:
        try:
            result = _pairs(pair_run, pair_ranks, k, kind)
        except CSRError as error:
            st.warning(f"{pair_series}: {error}")
        else:
            show_chart(viz.pair_scatter(result.pairs, kind=kind, k=k, correlation=result.correlation,
                                        mantel=result.mantel,
                                        title=f"{pair_series}: pair score at R@{k} vs URIEL {kind} distance"),
                       "gp_pairs", f"pairs_{pair_run}_r{k}_{kind}")
            st.dataframe(result.directed, key="gp_directed", hide_index=True)

publish_to_url(SCHEMA, {"dataset": dataset, "direction": direction, "k": k, "kind": kind, "grouping": grouping,
                        "threshold": threshold, "groups": overrides_text})
remember(KEYS)
