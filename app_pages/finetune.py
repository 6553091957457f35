"""Fine-tuning arms side by side: R@K per arm and language, Δ vs a baseline arm with paired CIs and Holm tests."""

from __future__ import annotations

import importlib.util

import pandas as pd
import streamlit as st

from csr_core import viz
from csr_core.dashboard_state import Job, Param, format_duration, pick
from csr_core.errors import CSRError
from csr_core.model_names import model_family
from csr_core.settings import SERIES_SETTINGS
from app_pages._ui import (empty_results_message, load_experiment_report, load_ranks, load_rows, load_runs,
                       publish_to_url, remember, restore, seed_from_url, show_chart, store, valid_choice)

KEYS = ("ft_dataset", "ft_setting", "ft_direction", "ft_k", "ft_model", "ft_baseline", "ft_arms")
SCHEMA = {"dataset": Param("str", ""), "setting": Param("str", "monolingual", SERIES_SETTINGS),
          "direction": Param("str", "t2i", ("t2i", "i2t")), "k": Param("int", 10, lo=1),
          "model": Param("str", ""), "baseline": Param("str", "")}
restore(KEYS)
seed_from_url(SCHEMA, {"dataset": "ft_dataset", "setting": "ft_setting", "direction": "ft_direction", "k": "ft_k",
                       "model": "ft_model", "baseline": "ft_baseline"})

st.title("Fine-tuning arms")


def experiment_section() -> None:
    """Experiment 2 as the report states it: arms (seeds pooled), the declared family's tests, English cost."""
    from csr_core.training import design_render, design_report

    experiment = load_experiment_report()
    if experiment is None:
        return
    towers = {t.tower: t for t in experiment.towers if t.primary}
    if not towers:
        return
    st.subheader("Experiment 2: arms with their seeds pooled (the report's declared tests)")
    e1, e2 = st.columns(2)
    tower_key = e1.radio("Text tower", list(towers), horizontal=True, key="ft_exp_tower",
                         format_func=lambda t: design_render.TOWER_LABEL.get(t, t))
    tower = towers[tower_key]
    langs = design_report.lang_order(tower.langs)
    primary = design_report.primary_frame(tower)
    side = viz.heatmap(primary, x="lang", y="arm", x_order=langs, y_order=tower.arms,
                       value_label=f"R@{design_report.PRIMARY_K} %",
                       title=f"text→image R@{design_report.PRIMARY_K}, mean over seeds (hover: two-level 95% CI)")
    show_chart(side, "ft_exp_side", f"experiment2_{tower.tower}_primary")
    tested = list(dict.fromkeys(t.arm for t in tower.f1))
    arms = e2.multiselect("Arms vs EN-only", tested, default=tested[: min(4, len(tested))], key="ft_exp_arms")
    if arms:
        chart = viz.arm_delta_bars(design_report.delta_frame(tower, arms), x_order=langs,
                                   title=f"Δ vs EN-only (seeds pooled; * Holm over all {len(tower.f1)} tests of "
                                         "family F1)")
        show_chart(chart, "ft_exp_delta", f"experiment2_{tower.tower}_delta")
    st.dataframe(pd.DataFrame([{"arm": c.arm, "Δ en": round(c.estimate.value, 1),
                                "90% interval": f"[{c.tost['low']:+.1f}, {c.tost['high']:+.1f}]",
                                "verdict": design_render.english_verdict(c, {(t.arm, t.target): t for t in tower.f1})}
                               for c in tower.english]), hide_index=True, key="ft_exp_english")
    st.caption("Pooled exactly as `results/README.md` pools them (same facts file). Below: single runs, "
               "for your own and scratch runs.")


experiment_section()
st.subheader("Single runs")
st.caption("One run per arm (the latest), outside any experiment's run set. "
           "Δ is paired on the same queries: photo-clustered bootstrap CI and permutation test, Holm across languages.")


def arm_label(frame: pd.DataFrame) -> pd.Series:
    """The arm a row belongs to: its train_arm, or 'zero-shot · model' for untrained models."""
    models = frame["model"].map(viz.short_model)
    return frame["train_arm"].where(frame["train_arm"] != "", "zero-shot · " + models)


def base_model(frame: pd.DataFrame) -> pd.Series:
    """The model an arm was trained from, so arms of different models are never compared with each other.

    `csr-mini-m:en/s0` → `csr-mini-m`; a checkpoint after `@` is the arm's weights (`x.json@arm.safetensors` → x).
    """
    models = frame["model"].astype(str)
    family = models.map(model_family).map(viz.short_model)
    untrained = models.str.split("@", n=1).str[0].map(viz.short_model)
    return family.where(frame["train_arm"] != "", untrained)


@st.cache_data(show_spinner=False, max_entries=256)
def _compare(run_a: str, run_b: str, k: int, setting: str, direction: str, _ranks_a: pd.DataFrame,
             _ranks_b: pd.DataFrame) -> pd.DataFrame:
    """Paired comparison of two runs (photo bootstrap + permutation test per language): seconds for many arms, so cached.

    Keyed on the run ids: a run folder is written once, atomically, and never changes afterwards.
    """
    from csr_core.analysis import compare_runs

    return compare_runs(_ranks_a, _ranks_b, k=k, setting=setting, direction=direction)


rows = load_rows()
if rows is None:
    st.stop()
from csr_core.training.design_report import experiment_run_sets  # noqa: E402  (light: no torch)

in_experiments = {m["run_id"] for m in load_runs()
                  if (m.get("params") or {}).get("run_set", "") in experiment_run_sets()}
recall = rows[(rows["source"] == "ours") & (rows["metric"] == "recall")
              & rows["setting"].isin(SERIES_SETTINGS) & ~rows["run_id"].isin(in_experiments)]
if recall.empty:
    if rows.empty:
        empty_results_message()
    else:
        st.info("No monolingual/multilingual single runs of our own yet (outside the experiments' run sets).")
else:
    recall = recall.assign(arm=arm_label(recall).to_numpy())
    c1, c2, c3, c4 = st.columns(4)
    datasets = sorted(recall["dataset"].unique())
    valid_choice("ft_dataset", datasets, datasets[-1])
    dataset = c1.selectbox("Dataset", datasets, key="ft_dataset")
    part = recall[recall["dataset"] == dataset]
    settings = [s for s in SERIES_SETTINGS if s in set(part["setting"])]
    valid_choice("ft_setting", settings, settings[0])
    setting = c2.selectbox("Setting", settings, key="ft_setting")
    part = part[part["setting"] == setting]
    directions = [d for d in ("t2i", "i2t") if d in set(part["direction"])]
    valid_choice("ft_direction", directions, pick("t2i", directions))
    direction = c3.selectbox("Direction", directions, key="ft_direction")
    part = part[part["direction"] == direction]
    ks = sorted(int(k) for k in part["k"].unique())
    valid_choice("ft_k", ks, pick(10, ks))
    k = int(c4.selectbox("K", ks, key="ft_k"))
    part = part[part["k"] == k]
    part = part.assign(base=base_model(part).to_numpy())
    families = sorted(part["base"].unique())
    family = ""
    if len(families) > 1:  # e.g. csr-mini and csr-mini-m both have an "en" arm: compare within one model
        valid_choice("ft_model", families, part.sort_values("run_id")["base"].iloc[-1])
        family = st.selectbox("Model (arms are compared within one base model)", families, key="ft_model")
        part = part[part["base"] == family]

    # one run per arm: the latest (run ids sort by time)
    latest = part.sort_values("run_id").groupby("arm")["run_id"].last()
    older = part.groupby("arm")["run_id"].nunique()
    repeated = [arm for arm, n in older.items() if n > 1]
    if repeated:
        st.caption(f"Several runs for {', '.join(repeated)}: the latest of each is shown.")
    part = part[part["run_id"].isin(set(latest))]
    arms = sorted(latest.index)
    default_base = next((a for a in arms if a.lower() in ("en-only", "en_only", "en")), arms[0])
    valid_choice("ft_baseline", arms, default_base)
    baseline = st.selectbox("Baseline arm", arms, key="ft_baseline")
    others = [a for a in arms if a != baseline]
    if st.session_state.get("_ft_last_baseline") not in (None, baseline):
        st.session_state["ft_arms"] = others  # a new baseline: compare every other arm against it
    st.session_state["_ft_last_baseline"] = baseline
    valid_choice("ft_arms", others, others)
    chosen = st.multiselect("Arms to compare", others, key="ft_arms")

    table = viz.recall_table(part, k, by="arm")
    order = ["en"] + sorted(set(table["lang"]) - {"en"})
    side = viz.heatmap(table[table["arm"].isin([baseline] + chosen)], x="lang", y="arm", x_order=order,
                       y_order=[baseline] + chosen, value_label=f"R@{k} %",
                       title=f"{dataset} · {setting} · {direction}: R@{k} per arm and language")
    show_chart(side, "ft_side", f"arms_{dataset}_{setting}_{direction}_r{k}")

    base_ranks = load_ranks(str(latest[baseline]))
    deltas = []
    for arm in chosen:
        ranks = load_ranks(str(latest[arm]))
        if ranks is None or base_ranks is None:
            continue
        try:
            cmp = _compare(str(latest[arm]), str(latest[baseline]), k, setting, direction, ranks, base_ranks)
        except CSRError as error:
            st.warning(f"{arm}: {error}")
            continue
        deltas.append(cmp.assign(arm=arm))
    if deltas:
        delta = pd.concat(deltas, ignore_index=True)
        chart = viz.arm_delta_bars(delta, baseline=baseline,
                                   title=f"Δ R@{k} vs {baseline} per language (95% CI; * Holm p<0.05)")
        chart.fig.update_xaxes(categoryorder="array", categoryarray=order)
        show_chart(chart, "ft_delta", f"arms_delta_{dataset}_{setting}_{direction}_r{k}")
        en = delta[delta["lang"] == "en"]
        for _, r in en.iterrows():
            verdict = "no significant drop" if not (r["significant"] and r["delta"] < 0) else "a significant drop"
            st.caption(f"EN under {r['arm']}: Δ {r['delta']:+.1f} [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] — "
                       f"{verdict} (the paper's claim: monolingual performance stays level).")
    elif chosen:
        st.info("The chosen arms have no per-query ranks to compare.")
    else:
        st.caption("Pick arms to compare against the baseline.")
    publish_to_url(SCHEMA, {"dataset": dataset, "setting": setting, "direction": direction, "k": k,
                            "model": family or None, "baseline": baseline})
    remember(KEYS)

# ---- train one more arm --------------------------------------------------------------------------------------------
st.subheader("Train one more arm")
if importlib.util.find_spec("csr_core.finetune") is None:
    st.info("Training an arm on demand (heads only, through the same background worker) is coming with the "
            "fine-tuning issue.")
    st.button("Train arm", key="ft_train", disabled=True)
else:
    st.caption("Trains csr-mini projection heads (towers frozen) on the flickr8k-multi30k train photos, then "
               "evaluates the new arm on the test photos (en, de, fr, cs, monolingual) and lands the rows here. "
               "The heads are not saved into the package; the run's manifest records how they were trained.")
    t1, t2, t3 = st.columns(3)
    from csr_core.training.arms import ALL_ARMS  # light: the training module itself imports torch
    new_arm = t1.text_input("Arm", key="ft_new_arm", placeholder="mlcs-de-fr-cs",
                            help="Known arms: " + ", ".join(ALL_ARMS))
    new_seed = int(t2.number_input("Seed", 0, 2**31 - 1, 0, key="ft_new_seed"))
    max_steps = int(t3.number_input("Max steps", 10, 20000, 1500, step=100, key="ft_new_steps"))
    job: Job | None = st.session_state.get("ft_job")
    busy = job is not None and job.snapshot().active
    if st.button("Train arm", key="ft_train", disabled=busy or not new_arm.strip() or not ALL_ARMS):
        results = store()
        arm_name = new_arm.strip()
        history: list[dict] = []  # appended by the training thread, drawn by the panel (list appends are atomic)
        st.session_state["ft_history"] = history

        def work(progress, cancel):
            from csr_core.evaluate import EvalConfig, run_evaluation
            from csr_core.finetune import TrainConfig, finetune

            def on_step(record: dict) -> None:
                history.append(record)
                progress(f"train: step {record['step']}, loss {record['loss']:.3f}", int(record["step"]),
                         max_steps)  # raises once Cancel was pressed: training stops at this step

            config = TrainConfig(tower="minilm", arm=arm_name, seed=new_seed, max_steps=max_steps)
            outcome = finetune(config, out_dir=None, log=lambda message: progress(f"train: {message[:80]}", 0, 0),
                               on_step=on_step)
            evaluation = EvalConfig(model=outcome.encoder.name, dataset="flickr8k-multi30k", split="test",
                                    langs=("en", "de", "fr", "cs"), settings=("monolingual",), seed=new_seed,
                                    train_arm=arm_name, run_set="scratch")
            return run_evaluation(evaluation, encoder=outcome.encoder, store=results, progress=progress,
                                  cancel=cancel)

        st.session_state["ft_job"] = Job(work, label=arm_name).start()

    def train_panel() -> None:
        job = st.session_state.get("ft_job")
        if job is None:
            return
        snap = job.snapshot()
        history = list(st.session_state.get("ft_history") or [])
        if snap.active:
            st.progress(snap.fraction, text=f"{snap.stage}: {snap.done}/{snap.total}" if snap.total else snap.stage)
            st.caption(f"Elapsed {format_duration(snap.elapsed_s)} · stage ETA {format_duration(snap.stage_eta_s)}")
            if st.button("Cancel training", key="ft_cancel"):
                job.cancel()
        if history:
            curve = viz.training_curve(history, title=f"{snap.label}: loss and validation mean recall per step")
            st.plotly_chart(curve.fig, key="ft_curve")
            st.caption(" · ".join(curve.notes))
        if snap.active:
            return
        if st.session_state.get("ft_job_seen") is not job:
            st.session_state["ft_job_seen"] = job
            st.rerun()
        if snap.status == "done":
            st.success(f"Arm {snap.label} trained and evaluated in {format_duration(snap.elapsed_s)}: run "
                       f"`{snap.result.run_id}`.")
        else:
            st.error(f"Training {snap.label} {snap.status}: {snap.error}")

    ft_job = st.session_state.get("ft_job")
    st.fragment(train_panel, run_every=1.0 if ft_job is not None and ft_job.snapshot().active else None)()
