"""Overview: what is in results/, and the headline finding as one chart with CIs."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from csr_core import viz
from csr_core.glossary import GLOSSARY, explain
from csr_core.languages import display_order
from csr_core.dashboard_state import Param, pick
from csr_core.results import caption_lang
from app_pages._ui import (empty_results_message, load_experiment_report, load_rows, load_runs, notes_of,
                       publish_to_url, remember, restore, seed_from_url, show_chart, valid_choice, with_series)

KEYS = ("ov_dataset", "ov_direction", "ov_k")
SCHEMA = {"dataset": Param("str", ""), "direction": Param("str", "t2i", ("t2i", "i2t")), "k": Param("int", 10, lo=1)}
restore(KEYS)
seed_from_url(SCHEMA, {"dataset": "ov_dataset", "direction": "ov_direction", "k": "ov_k"})

st.title("CSR Lab — overview")
st.write("Do CLIP-like image-text encoders retrieve better across languages after training on artificially "
         "code-switched captions? Every number here comes from `results/` with its 95% bootstrap CI.")

# ---- the answer ------------------------------------------------------------------------------------------------
experiment = load_experiment_report()
if experiment is not None:
    from csr_core.training import design_html, design_render, design_report

    st.subheader("The answer so far (experiment 2: close vs distant languages)")
    st.markdown("\n".join(design_render.answer_lines(experiment)))
    towers = {t.tower: t for t in experiment.towers if t.f1}
    if towers:
        t1, t2 = st.columns(2)
        tower_key = t1.radio("Text tower", list(towers), horizontal=True, key="ov_tower",
                             format_func=lambda t: design_render.TOWER_LABEL.get(t, t))
        tower = towers[tower_key]
        tested = list(dict.fromkeys(t.arm for t in tower.f1))
        default = [a for a in design_report.HEADLINE_ARMS if a in tested] or tested[:3]
        arms = t2.multiselect("Arms", tested, default=default, key="ov_arms")
        show_chart(design_html.delta_chart(tower, arms), "ov_answer", f"experiment2_{tower.tower}_delta")
        board = design_report.leaderboard(experiment)
        with st.expander("Leaderboard: every tower × arm (mean over seeds; sortable; CSV)", expanded=False):
            st.dataframe(board, key="ov_leaderboard", hide_index=True)
            st.download_button("CSV", board.to_csv(index=False), file_name="experiment2_leaderboard.csv",
                               mime="text/csv", key="ov_leaderboard_csv")
        st.download_button("Whole report (one HTML file)", lambda: design_html.render_html(experiment),
                           file_name=f"{experiment.run_set}_report.html", mime="text/html", key="ov_report_html",
                           help="The README's text, the Δ chart of each tower and the leaderboard in one "
                                "self-contained file (charts stay interactive offline)")
        st.caption(f"{experiment.n_runs} runs of run set `{experiment.run_set}`; each bar pools the seeds finished "
                   f"(design: {len(experiment.design_seeds)}). The declared tests, English cost (TOST) and every "
                   "table: `results/README.md`.")

rows = load_rows()
if rows is None:
    st.stop()
if rows.empty:
    empty_results_message()
    st.stop()

ours = rows[rows["source"] == "ours"]
refs = rows[rows["source"] != "ours"]
langs = sorted(set(caption_lang(rows)) - {"img", "all"})
c1, c2, c3, c4 = st.columns(4)
c1.metric("Runs", ours["run_id"].nunique())
c2.metric("Models", rows["model"].nunique())
c3.metric("Datasets", rows["dataset"].nunique())
c4.metric("Languages", len(langs))

# ---- headline --------------------------------------------------------------------------------------------------
st.subheader("Headline: R@K per caption language (monolingual image retrieval)")
mono = with_series(rows[(rows["setting"] == "monolingual") & (rows["metric"] == "recall")])
if mono.empty:
    st.info("No monolingual recall rows yet; the other pages show what there is.")
else:
    datasets = sorted(mono["dataset"].unique())
    latest = ours.sort_values("run_id")["dataset"].iloc[-1] if len(ours) else datasets[0]
    valid_choice("ov_dataset", datasets, pick(latest, datasets))
    h1, h2, h3 = st.columns(3)
    dataset = h1.selectbox("Dataset", datasets, key="ov_dataset")
    part = mono[mono["dataset"] == dataset]
    directions = [d for d in ("t2i", "i2t") if d in set(part["direction"])]
    valid_choice("ov_direction", directions, pick("t2i", directions))
    direction = h2.radio("Direction", directions, key="ov_direction", horizontal=True,
                         format_func=lambda d: {"t2i": "text → image", "i2t": "image → text"}[d],
                         help=f"t2i: {explain('t2i')} i2t: {explain('i2t')}")
    part = part[part["direction"] == direction]
    # the headline is a comparison, not an inventory: by default EN-only vs ML-CS (seed 0) per base model
    series = sorted(part["series"].unique())
    headline = [s for s, arm, seed in part[["series", "train_arm", "seed"]].drop_duplicates().itertuples(index=False)
                if arm in ("en", "mlcs-de-fr-cs") and int(seed) == 0]
    if "ov_series" not in st.session_state or not set(st.session_state["ov_series"]) <= set(series):
        st.session_state["ov_series"] = sorted(set(headline)) or series[-4:]
    chosen = st.multiselect("Models / arms", series, key="ov_series",
                            help="Defaults to the EN-only and ML-CS(de,fr,cs) arms of each embedded model")
    part = part[part["series"].isin(chosen)] if chosen else part
    ks = sorted(int(k) for k in part["k"].unique())
    valid_choice("ov_k", ks, pick(10, ks))
    k = h3.selectbox("K", ks, key="ov_k", help=explain("R@K"))
    table = viz.recall_table(part, k)
    order = display_order(table["lang"])
    chart = viz.recall_bars(table, k=k, title=f"{dataset}: R@{k} ({direction}) per language, 95% CI")
    chart.fig.update_xaxes(categoryorder="array", categoryarray=order)
    show_chart(chart, "ov_headline", f"overview_{dataset}_{direction}_r{k}")
    notes_of(part[part["k"] == k])
    publish_to_url(SCHEMA, {"dataset": dataset, "direction": direction, "k": k})
    remember(KEYS)

# ---- inventory -------------------------------------------------------------------------------------------------
st.subheader("Runs")
runs = load_runs()
if runs:
    inventory = pd.DataFrame([{
        "run_id": m["run_id"],
        "created (UTC)": str(m.get("created_utc", ""))[:19],
        "model": viz.short_model(str(m.get("params", {}).get("model", ""))),
        "dataset": m.get("params", {}).get("dataset", ""),
        "split": m.get("params", {}).get("split", ""),
        "settings": ", ".join(m.get("params", {}).get("settings", []) or []),
        "arm": m.get("params", {}).get("train_arm", ""),
        "rows": m.get("n_rows"),
    } for m in reversed(runs)])
    st.dataframe(inventory, key="ov_runs", hide_index=True)
else:
    st.caption("No runs of our own yet (only imported reference numbers).")
if len(refs):
    st.subheader("Reference numbers (imported, not run here)")
    summary = refs.groupby("source").agg(models=("model", "nunique"), datasets=("dataset", "nunique"),
                                         rows=("value", "size")).reset_index()
    st.dataframe(summary, key="ov_refs", hide_index=True)

with st.expander("Notation: R@K, directions, gallery, arms, seeds, model names", expanded=False):
    st.dataframe(pd.DataFrame({"term": list(GLOSSARY), "meaning": list(GLOSSARY.values())}), key="ov_glossary",
                 hide_index=True)

st.subheader("Where next")
l1, l2, l3, l4, l5 = st.columns(5)
l1.page_link("app_pages/codeswitch.py", label="Code-switch explorer", icon="🔀")
l2.page_link("app_pages/heatmaps.py", label="R@K heatmaps", icon="🟥")
l3.page_link("app_pages/gaps.py", label="Gaps vs typology", icon="📐")
l4.page_link("app_pages/run_eval.py", label="Run eval", icon="▶️")
l5.page_link("app_pages/finetune.py", label="Fine-tuning", icon="🎯")
