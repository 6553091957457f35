"""The declared experiment designs: which arms, seeds, languages and settings each run set holds.

Apart from `csr_core.experiment` (which trains and evaluates them) because the dashboard and the reports read the
designs on every page, and that module imports torch (~1.5 s on a fresh server).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from csr_core.settings import check_settings
from csr_core.training.arms import DESIGN_ARMS
from csr_core.training.arms import V1_ARMS as ALL_V1_ARMS

TEST_LANGS: tuple[str, ...] = ("en", "de", "fr", "cs")
XTD_LANGS: tuple[str, ...] = ("en", "de", "fr", "es", "it", "ru", "zh", "ko", "tr", "pl")
TEST_SETTINGS: tuple[str, ...] = check_settings(("monolingual", "multilingual", "cross", "cs-queries"))


#: Arms whose text towers are trained too (experiment-2-towers): the main comparison at tower-training cost.
TOWER_ARMS: tuple[str, ...] = ("en", "mix-mlcs-de-fr-pt-zh-ar", "mlcs-de-fr-pt", "mlcs-zh-ar", "mlcs-de-fr-pt-zh-ar",
                               "tt-de-fr-pt-zh-ar")


@dataclass(frozen=True)
class Design:
    """One experiment's declared grid and evaluation: what its run set holds (recorded in every run's params)."""

    run_set: str
    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    test_langs: tuple[str, ...]
    settings: tuple[str, ...]
    cs_langs: tuple[str, ...]
    switching: str  # the trainer's switching for code-switched arms
    variants: dict[str, int]  # switched variants (the dynamic bank) per text tower
    xtd_seeds: tuple[int, ...] | None  # seeds evaluated on XTD10 text too (None: all)
    ship_seeds: tuple[int, ...]
    translate_test: bool = False  # EN-only is also evaluated with X queries translated word by word into EN
    top_layers: int = 0  # > 0: the text tower's top N layers train too (model names end in +topN)
    train: tuple[tuple[str, Any], ...] = ()  # TrainConfig overrides of this design
    cs_query_seeds: tuple[int, ...] = (0,)  # seeds also evaluated on code-switched English queries
    cs_query_seed: int | None = None  # switching seed of those queries (None: each run's own seed)


DESIGNS: dict[str, Design] = {
    # the first experiment: the shipped heads (seed 0) and their runs, made before run sets existed (run_set "")
    # (every seed switched with CodeSwitcher seed 0: cs_seed fixed, as it then was)
    "experiment-1": Design("", ALL_V1_ARMS, (0, 1, 2), TEST_LANGS, TEST_SETTINGS, ("de", "fr", "cs"), "static",
                           {"minilm": 1, "e5": 1}, None, (0,), train=(("cs_seed", 0),)),
    # close vs distant: five languages, five seeds whose switching draws differ, dynamic switching
    "experiment-2": Design("experiment-2", DESIGN_ARMS, (0, 1, 2, 3, 4), ("en", "de", "fr", "pt", "cs", "zh", "ar"),
                           check_settings(("monolingual", "multilingual", "cs-queries")),
                           ("de", "fr", "pt", "zh", "ar"), "dynamic", {"minilm": 2, "e5": 1}, (0,), (),
                           translate_test=True, cs_query_seeds=(0, 1, 2, 3, 4), cs_query_seed=0),
    # the main arms with trained text towers (top 2 layers + heads): CPU-expensive, GPU-friendly
    "experiment-2-towers": Design("experiment-2-towers", TOWER_ARMS, (0, 1, 2),
                                  ("en", "de", "fr", "pt", "cs", "zh", "ar"), check_settings(("monolingual",)),
                                  ("de", "fr", "pt", "zh", "ar"), "dynamic", {"minilm": 2, "e5": 2}, (0,), (),
                                  top_layers=2, train=(("batch_size", 64), ("max_steps", 300), ("eval_every", 25),
                                                       ("patience", 4))),
}
DEFAULT_DESIGN = "experiment-2"
