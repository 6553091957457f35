"""Resuming the experiment grid: a (tower, arm, seed) is skipped only when every one of its evaluations is stored with
exactly the parameters the design asks for now."""

from __future__ import annotations

import json

from csr_core.experiment import ExperimentConfig, _finished_entry, eval_configs
from csr_core.results import ResultsStore, build_manifest, make_rows


def _log(cfg: ExperimentConfig, key: str, entry: dict) -> None:
    path = cfg.training_log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({key: entry}))


def test_finished_runs_are_skipped_and_changed_designs_are_not(tmp_path):
    cfg = ExperimentConfig.from_design("experiment-2", results_dir=str(tmp_path), towers=("e5",))
    assert cfg.training_log_path() == tmp_path / "experiment-2" / "training_log.json"
    store = ResultsStore(tmp_path)
    configs = eval_configs("e5", "blcs-zh", 0, cfg)
    assert [c.dataset for c in configs] == ["flickr8k-multi30k", "xtd10"] and configs[0].run_set == "experiment-2"
    runs = {c.dataset: store.write_run(make_rows([]), build_manifest(c.params())) for c in configs}
    entry = {"model": "csr-mini-m:blcs-zh/s0", "arm": "blcs-zh", "seed": 0, "run_set": "experiment-2", "runs": runs}
    _log(cfg, "e5/blcs-zh/s0", entry)
    assert _finished_entry(cfg, "e5/blcs-zh/s0", store) == entry
    assert _finished_entry(cfg, "e5/blcs-zh/s1", store) is None  # never trained

    # EN-only's evaluation now includes translate-test: a stored run without it is not "finished"
    (test_cfg, *_) = eval_configs("e5", "en", 0, cfg)
    assert "translate-test" in test_cfg.settings
    older = build_manifest({**test_cfg.params(), "settings": [s for s in test_cfg.settings if s != "translate-test"]})
    en_runs = {"flickr8k-multi30k": store.write_run(make_rows([]), older),
               "xtd10": store.write_run(make_rows([]), build_manifest(eval_configs("e5", "en", 0, cfg)[1].params()))}
    _log(cfg, "e5/en/s0", {"model": "csr-mini-m:en/s0", "arm": "en", "seed": 0, "run_set": "experiment-2",
                           "runs": en_runs})
    assert _finished_entry(cfg, "e5/en/s0", store) is None


def test_the_towers_design_names_its_models_and_log_keys_with_the_trained_layers(tmp_path):
    from csr_core.experiment import DESIGNS

    cfg = ExperimentConfig.from_design("experiment-2-towers", results_dir=str(tmp_path))
    assert cfg.top_layers == 2 and DESIGNS["experiment-2-towers"].arms[0] == "en"
    (test_cfg,) = eval_configs("e5", "mlcs-zh-ar", 1, cfg)  # XTD10 text for seed 0 only
    assert test_cfg.model == "csr-mini-m:mlcs-zh-ar/s1+top2" and test_cfg.run_set == "experiment-2-towers"
    assert len(eval_configs("e5", "mlcs-zh-ar", 0, cfg)) == 2
    assert cfg.train["batch_size"] == 64 and cfg.train["switching"] == "dynamic"


def test_code_switched_queries_are_the_same_for_every_seed_of_experiment_2(tmp_path):
    cfg = ExperimentConfig.from_design("experiment-2", results_dir=str(tmp_path))
    zero, two = eval_configs("e5", "blcs-ar", 0, cfg)[0], eval_configs("e5", "blcs-ar", 2, cfg)[0]
    assert "cs-queries" in zero.settings and "cs-queries" in two.settings
    assert "cs_query_seed" not in zero.params()  # seed 0 switches with seed 0 anyway: its key is unchanged
    assert two.params()["cs_query_seed"] == 0


def test_shipped_experiment_2_runs_match_the_design_they_were_made_for():
    """Every stored seed-0 run of experiment 2 is what eval_configs asks for now (or a resume would redo it)."""
    from csr_core.paths import REPO_ROOT

    store = ResultsStore(REPO_ROOT / "results")
    cfg = ExperimentConfig.from_design("experiment-2")
    wanted = {}
    for tower in ("e5", "minilm"):
        for arm in cfg.arms:
            for config in eval_configs(tower, arm, 0, cfg):
                wanted[(config.model, config.dataset)] = build_manifest(config.params())["params_key"]
    stored = [m for m in store.runs() if (m.get("params") or {}).get("run_set") == "experiment-2"
              and (m["params"]["model"], m["params"]["dataset"]) in wanted]
    assert stored, "no shipped experiment-2 run of seed 0"
    newest = {}
    for m in stored:  # oldest first: the newest run of a model and dataset is the one the report reads
        newest[(m["params"]["model"], m["params"]["dataset"])] = m["params_key"]
    assert all(newest[key] == wanted[key] for key in newest)


def test_the_first_experiment_is_reproduced_with_its_fixed_switching():
    cfg = ExperimentConfig.from_design("experiment-1")
    assert cfg.run_set == "" and cfg.train == {"switching": "static", "cs_seed": 0}
    (test_cfg, xtd_cfg) = eval_configs("minilm", "mlcs-de-fr-cs", 2, cfg)
    assert "run_set" not in test_cfg.params() and test_cfg.model == "csr-mini:mlcs-de-fr-cs/s2"
