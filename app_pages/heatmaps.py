"""R@K heatmaps: model × language and language × language, a difference heatmap, and a per-query error browser.

Plotly heatmaps give no selection events in Streamlit, so each heatmap is paired with a cell-selectable table
(`st.dataframe(on_select="rerun", selection_mode="single-cell")`) that drills down into the failing queries.
"""

from __future__ import annotations

import streamlit as st

from csr_core import viz
from csr_core.errors import CSRError
from csr_core.glossary import explain
from csr_core.dashboard_state import SCRATCH_RUN_SET, Param, pick, pool_seeds, query_table, run_sets
from csr_core.settings import SETTING_NAMES, SETTINGS
from app_pages._ui import (empty_results_message, load_ranks, load_rows, load_runs, notes_of, publish_to_url,
                       remember, restore, seed_from_url, show_chart, try_dataset, valid_choice, with_series)

MAX_REF_SERIES = 8
MAX_ROWS = viz.MAX_HEATMAP_ROWS  # rows shown by default; more are one multiselect away
KEYS = ("hm_dataset", "hm_setting", "hm_direction", "hm_k", "hm_refs", "hm_ref_models", "hm_run", "hm_diff_a",
        "hm_diff_b", "hm_run_sets", "hm_pool", "hm_rows")
SCHEMA = {"dataset": Param("str", ""), "setting": Param("str", "monolingual", SETTING_NAMES),
          "direction": Param("str", "t2i", ("t2i", "i2t", "t2t")), "k": Param("int", 10, lo=1),
          "refs": Param("bool", True), "run": Param("str", "")}
restore(KEYS)
seed_from_url(SCHEMA, {"dataset": "hm_dataset", "setting": "hm_setting", "direction": "hm_direction", "k": "hm_k",
                       "refs": "hm_refs", "run": "hm_run"})

st.title("R@K heatmaps")
rows = load_rows()
if rows is None:
    st.stop()
if rows.empty:
    empty_results_message()
    st.stop()

set_of = run_sets(load_runs())
rows = rows.assign(run_set=rows["run_id"].map(set_of).where(rows["source"] == "ours").fillna("reference"))
available_sets = sorted(set(rows["run_set"]) - {"reference"})
valid_choice("hm_run_sets", available_sets, [s for s in available_sets if s != SCRATCH_RUN_SET] or available_sets)
chosen_sets = st.multiselect("Run sets", available_sets, key="hm_run_sets",
                             help="Which runs to show: the shipped experiments, your own runs, or the scratch runs of "
                                  "the Run eval / Fine-tuning pages (left out by default, so they never mix into "
                                  "published evidence)")
rows = rows[rows["run_set"].isin([*chosen_sets, "reference"])]
recall = rows[rows["metric"] == "recall"]
c1, c2, c3, c4, c5 = st.columns([2, 2, 1, 1, 1])
datasets = sorted(recall["dataset"].unique())
latest = rows[rows["source"] == "ours"].sort_values("run_id")["dataset"]
valid_choice("hm_dataset", datasets, pick(latest.iloc[-1] if len(latest) else None, datasets))
dataset = c1.selectbox("Dataset", datasets, key="hm_dataset")
part = recall[recall["dataset"] == dataset]
settings = [s for s in SETTING_NAMES if s in set(part["setting"])]
valid_choice("hm_setting", settings, pick("monolingual", settings))
setting = c2.selectbox("Setting", settings, key="hm_setting", format_func=lambda name: SETTINGS[name].label)
spec = SETTINGS[setting]
part = part[part["setting"] == setting]
directions = [d for d in ("t2i", "i2t", "t2t") if d in set(part["direction"])]
valid_choice("hm_direction", directions, pick("t2i", directions))
direction = c3.selectbox("Direction", directions, key="hm_direction",
                         help=" ".join(f"{d}: {explain(d)}" for d in ("t2i", "i2t", "t2t")))
part = part[part["direction"] == direction]
ks = sorted(int(k) for k in part["k"].unique())
valid_choice("hm_k", ks, pick(10, ks))
k = int(c4.selectbox("K", ks, key="hm_k", help=explain("R@K")))
has_refs = bool((part["source"] != "ours").any())
st.session_state.setdefault("hm_refs", True)
show_refs = c5.checkbox("References", key="hm_refs", disabled=not has_refs,
                        help="Show imported open_clip / CLIP_benchmark numbers beside our runs (marked [ref:…])")
if not show_refs:
    part = part[part["source"] == "ours"]
part = with_series(part)
if has_refs and show_refs:
    st.caption("Rows marked **[ref:…]** are imported published numbers (not run here; no per-query ranks).")
    refs = part[part["source"] != "ours"]
    at_k = refs[refs["k"] == k].groupby("series")["value"].mean().sort_values(ascending=False)
    ref_series = list(at_k.index)
    if len(ref_series) > MAX_REF_SERIES:
        valid_choice("hm_ref_models", ref_series, ref_series[:MAX_REF_SERIES])
        shown_refs = st.multiselect(f"Reference models ({len(ref_series)} imported; best {MAX_REF_SERIES} at R@{k} "
                                    "shown by default)", ref_series, key="hm_ref_models")
        part = part[(part["source"] == "ours") | part["series"].isin(shown_refs)]

run_label = ""
if spec.one_run_per_view:
    series = sorted(part["series"].unique())
    latest_series = part.sort_values("run_id")["series"].iloc[-1]
    valid_choice("hm_run", series, pick(latest_series, series))
    run_label = st.selectbox("Model / run", series, key="hm_run")
    view = viz.setting_view(spec.layout, part[part["series"] == run_label], k, title=run_label)
else:
    p1, p2 = st.columns([1, 3])
    st.session_state.setdefault("hm_pool", True)
    pooled = p1.toggle("Pool seeds", key="hm_pool", help="One row per arm: the mean over its seeds (sd and seeds "
                       "on hover and in the table's note); off: one row per run, with its own 95% CI")
    shown = with_series(pool_seeds(part.drop(columns=["series"]))) if pooled else part
    row_labels = sorted(shown["series"].unique())
    if len(row_labels) > MAX_ROWS:
        valid_choice("hm_rows", row_labels, row_labels[:MAX_ROWS])
        chosen_rows = p2.multiselect(f"Rows ({len(row_labels)}; {MAX_ROWS} shown by default)", row_labels,
                                     key="hm_rows")
        shown = shown[shown["series"].isin(chosen_rows)]
    any_pooled = pooled and bool((shown.get("n_seeds", 1) > 1).any())
    title = f"{dataset} · {setting} · {direction}" + (" · seeds pooled" if any_pooled else "")
    view = viz.setting_view(spec.layout, shown, k, title=title)
for index, extra in enumerate(view.extra):
    show_chart(extra, f"hm_extra{index}", f"{setting}_{dataset}_r{k}_{index}")
chart, cell_rows, x_col, y_col = view.chart, view.cells, view.x, view.y  # cell_rows map a selected cell to its run

show_chart(chart, "hm_main", f"heatmap_{dataset}_{setting}_{direction}_r{k}")
notes_of(part[part["k"] == k])

if "lang_share" in spec.extra_metrics:
    share = with_series(rows[(rows["dataset"] == dataset) & (rows["setting"] == setting)
                             & (rows["metric"] == "lang_share")])
    if len(share):
        share_table = share.assign(lang=share["doc_lang"])[["series", "lang", "value", "n_queries"]]
        show_chart(viz.lang_share_bars(share_table, title="Language of the top-1 caption for each image query"),
                   "hm_share", f"lang_share_{dataset}")

# ---- cell-selectable table → per-query error browser -------------------------------------------------------------
st.subheader("Drill down: pick a cell")
if chart.table.empty:
    st.info("Nothing to drill into for this selection.")
else:
    wide = chart.table.pivot(index=y_col, columns=x_col, values="value")
    x_order = [c for c in chart.fig.data[0].x] if len(chart.fig.data) else list(wide.columns)
    wide = wide.reindex(columns=[c for c in x_order if c in wide.columns]).round(1)
    wide.columns = [str(c) for c in wide.columns]
    event = st.dataframe(wide.reset_index(), key="hm_cells", on_select="rerun", selection_mode="single-cell",
                         hide_index=True)
    cells = list(getattr(event.selection, "cells", []) or []) if event is not None else []
    if not cells:
        st.caption("Select a value in the table to list the queries that fail there.")
    else:
        row_index, column = cells[0]
        frame = wide.reset_index()
        if column == y_col or row_index >= len(frame):
            st.caption("Select a value cell (not the row label).")
        else:
            y_value = frame.iloc[row_index][y_col]
            match = cell_rows[(cell_rows[y_col].astype(str) == str(y_value))
                              & (cell_rows[x_col].astype(str) == str(column))]
            run_id = str(match["run_id"].iloc[0]) if len(match) else ""
            st.markdown(f"**{y_value} · {column}** — run `{run_id}`")
            ranks = load_ranks(run_id)
            if ranks is None:
                st.info("Reference rows are published aggregates: they carry no per-query ranks to browse.")
            else:
                split = str(rows.loc[rows["run_id"] == run_id, "split"].iloc[0])
                data = try_dataset(dataset, split)
                cell = spec.cell_of(str(y_value), str(column), match.iloc[0] if len(match) else None)
                queries = query_table(ranks, data, setting=setting, direction=direction, k=k, **cell)
                failing = queries[~queries["hit"]]
                q1, q2, q3 = st.columns(3)
                q1.metric("Queries", len(queries))
                q2.metric(f"Fail (rank > {k})", len(failing))
                q3.metric("Median rank", f"{queries['rank'].median():.0f}" if len(queries) else "—")
                if spec.code_switched:
                    st.caption("Captions are shown before switching (the switched text is regenerated, not stored).")
                picked = st.dataframe(failing.drop(columns=["image"]), key="hm_queries", on_select="rerun",
                                      selection_mode="single-row", hide_index=True, height=260)
                st.download_button("CSV", queries.to_csv(index=False).encode("utf-8"), key="hm_queries_csv",
                                   file_name=f"queries_{run_id}_{setting}_{direction}_{y_value}_{column}.csv",
                                   mime="text/csv")
                selected_rows = list(getattr(picked.selection, "rows", []) or []) if picked is not None else []
                if len(failing):
                    q = failing.iloc[selected_rows[0] if selected_rows else 0]
                    i1, i2 = st.columns([1, 2])
                    if q["image"]:
                        i1.image(q["image"], caption=str(q["query_id"]), width=300)
                    i2.markdown(f"**Query** `{q['query_id']}` — rank **{q['rank']}**")
                    i2.write(q["caption"] or "(caption not available here)")

# ---- difference between two runs / arms ---------------------------------------------------------------------------
st.subheader("Difference between two runs or arms")
ours = part[part["source"] == "ours"]
options = sorted(ours["series"].unique())
if len(options) < 2:
    st.caption("Two runs of this dataset/setting are needed for a difference heatmap.")
else:
    valid_choice("hm_diff_a", options, options[-1])
    valid_choice("hm_diff_b", options, options[0])
    d1, d2 = st.columns(2)
    a_label = d1.selectbox("A", options, key="hm_diff_a")
    b_label = d2.selectbox("B (subtracted)", options, key="hm_diff_b")
    a_rows, b_rows = ours[ours["series"] == a_label], ours[ours["series"] == b_label]
    compare = None
    diff, dx, dy = viz.setting_difference(spec.layout, a_rows, b_rows, k, ks)
    if not spec.one_run_per_view:
        a_run, b_run = a_rows["run_id"].iloc[0], b_rows["run_id"].iloc[0]
        ranks_a, ranks_b = load_ranks(a_run), load_ranks(b_run)
        if ranks_a is not None and ranks_b is not None:
            from csr_core.analysis import compare_runs

            try:
                compare = compare_runs(ranks_a, ranks_b, k=k, setting=setting, direction=direction)
            except CSRError as error:
                st.warning(f"No paired test between {a_label} and {b_label}: {error}")
            if compare is not None:
                ci = compare[["lang", "ci_low", "ci_high", "n"]].rename(columns={"n": "n_queries"}).assign(
                    metric=f"R@{k}")
                diff = diff.merge(ci, on=["lang", "metric"], how="left")
    diff_order = ["en"] + sorted(set(diff[dx]) - {"en"}) if dx in ("lang", "doc_lang") else None
    diff_chart = viz.difference_heatmap(diff, x=dx, y=dy, title=f"A − B: {a_label} minus {b_label}",
                                        x_order=diff_order)
    show_chart(diff_chart, "hm_diff", f"difference_{dataset}_{setting}_{direction}")
    if compare is not None and len(compare):
        st.markdown(f"**Paired comparison at R@{k}** (same queries; photo-clustered bootstrap CI and permutation test, Holm across "
                    "languages)")
        st.dataframe(compare, key="hm_compare", hide_index=True)
        st.download_button("CSV", compare.to_csv(index=False).encode("utf-8"), key="hm_compare_csv",
                           file_name=f"compare_{dataset}_{setting}_{direction}_r{k}.csv", mime="text/csv")

publish_to_url(SCHEMA, {"dataset": dataset, "setting": setting, "direction": direction, "k": k, "refs": show_refs,
                        "run": run_label or None})
remember(KEYS)
