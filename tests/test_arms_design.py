"""The second experiment's arms: mixed EN + CS pools, the noise control, equal-exposure translate-train, switching
draws that vary with the seed, and dynamic switching (one variant per epoch) in the trainer."""

from __future__ import annotations

import numpy as np
import pytest

from csr_core.codeswitch import CodeSwitcher
from csr_core.errors import CSRError
from csr_core.lexicon import Lexicon
from csr_core.training.arms import DESIGN_ARMS, build_pool_views, build_pools, cs_switch_seed, parse_arm
from csr_core.training.data import CaptionPools

LEX = {
    "de": Lexicon({"dog": ["Hund"], "runs": ["rennt", "läuft"], "red": ["rot"], "ball": ["Ball"], "grass": ["Gras"],
                   "cat": ["Katze"], "big": ["groß"]}, "en", "de"),
    "zh": Lexicon({"dog": ["狗"], "runs": ["跑"], "red": ["红色"], "ball": ["球"], "grass": ["草"], "cat": ["猫"]},
                  "en", "zh"),
}
ENGLISH = [["a dog runs on the grass", "the red ball", "a big dog"], ["a cat on red grass", "a dog and a ball"]]


def test_every_design_arm_parses_and_says_what_it_is():
    for arm in DESIGN_ARMS:
        spec = parse_arm(arm)
        assert spec.name == arm and spec.describe
    assert parse_arm("mix-mlcs-de-zh").with_english and parse_arm("noise-blcs-de").noise
    assert parse_arm("ttmt-zh").caption_lang("zh") == "zh-x-mt" and parse_arm("tt-zh").caption_lang("zh") == "zh"
    for bad in ("mix-tt-de", "noise-dict-de-fr", "tt-en-de", "tt-de-p75", "mix-en"):
        with pytest.raises(CSRError):
            parse_arm(bad)


def test_switching_draws_vary_with_the_code_switch_seed_and_match_the_switcher():
    assert cs_switch_seed(0, 1) == 1 and cs_switch_seed(3, 1) == 3001
    texts = [c for caps in ENGLISH for c in caps]
    views = {s: build_pool_views("mlcs-de-zh-p75", ENGLISH, lexicons=LEX, variants=2, cs_seed=s) for s in (0, 1)}
    for s, v in ((0, 0), (0, 1), (1, 0), (1, 1)):
        switcher = CodeSwitcher(LEX, mode="ml", p=0.75, seed=cs_switch_seed(s, v), langs=["de", "zh"])
        assert [c for pool in views[s][v] for c in pool] == [r.text for r in switcher.switch_batch(texts)]
    assert views[0] != views[1]  # another seed, other switched text
    assert views[0][0] != views[0][1]  # another variant, other switched text


def test_static_pools_flatten_the_views_caption_by_caption():
    views = build_pool_views("mix-blcs-de", ENGLISH, lexicons=LEX, variants=2)
    pools = build_pools("mix-blcs-de", ENGLISH, lexicons=LEX, variants=2)
    for i, caps in enumerate(ENGLISH):
        assert views[0][i][: len(caps)] == caps and views[1][i][: len(caps)] == caps  # EN in every view
        assert pools[i] == caps + [views[v][i][len(caps) + j] for j in range(len(caps)) for v in (0, 1)]


def test_noise_control_switches_the_same_positions_into_random_target_words():
    real = build_pool_views("mlcs-de-zh-p100", ENGLISH, lexicons=LEX, variants=1, cs_seed=4)[0]
    noise = build_pool_views("noise-mlcs-de-zh-p100", ENGLISH, lexicons=LEX, variants=1, cs_seed=4)[0]
    switcher = CodeSwitcher(LEX, mode="ml", p=1.0, seed=cs_switch_seed(4, 0), langs=["de", "zh"])
    vocab = {lang: set(lex.target_words()) for lang, lex in LEX.items()}
    changed = 0
    for caps, real_pool, noise_pool in zip(ENGLISH, real, noise):
        for cap, r, n in zip(caps, real_pool, noise_pool):
            result = switcher.switch(cap)
            assert r == result.text
            # rebuild: every span's replacement is a word of the span's language; the rest is untouched
            rebuilt, last = [], 0
            rest = n
            for span in result.spans:
                before = result.text[last:span.out_start]
                assert rest.startswith(before)
                rest = rest[len(before):]
                word = next(w for w in sorted(vocab[span.lang], key=len, reverse=True)
                            if rest.lower().startswith(w.lower()))
                rebuilt.append(word)
                rest = rest[len(word):]
                last = span.out_end
            assert rest == result.text[last:]
            changed += sum(a.lower() != b.lower() for a, b in zip(rebuilt, (s.replacement for s in result.spans)))
    assert changed > 0  # not the real translations


def test_equal_exposure_translate_train_gives_each_language_as_many_slots_as_english():
    zh = [["狗在草地上跑"], []]
    de = [["ein Hund", "der rote Ball"], ["eine Katze"]]
    (pools,) = build_pool_views("tt-de-zh", ENGLISH, {"de": de, "zh": zh})
    assert pools[0] == ENGLISH[0] + ["ein Hund", "der rote Ball", "ein Hund"] + ["狗在草地上跑"] * 3
    assert pools[1] == ENGLISH[1] + ["eine Katze"] * 2  # no zh caption: the language sits out for this photo
    with pytest.raises(CSRError, match="zh-x-mt"):
        build_pool_views("ttmt-zh", ENGLISH, {"zh": zh})


def test_dynamic_pools_show_each_epoch_its_own_variant():
    pools = CaptionPools.from_views([[["a0", "b0"], ["c0"]], [["a1", "b1"], ["c1"]]])
    rows, u = np.array([0, 1]), np.array([0.9, 0.1])
    drawn = {e: [pools.texts[j] for j in pools.draw(rows, u, epoch=e)] for e in range(3)}
    assert drawn == {0: ["b0", "c0"], 1: ["b1", "c1"], 2: ["b0", "c0"]}
    assert pools.describe()["views"] == 2
    with pytest.raises(CSRError):
        CaptionPools.from_views([[["a"]], [["a"], ["b"]]])


def test_trainer_draws_epoch_e_from_variant_e_mod_k():
    from csr_core.training.data import TrainData, ValData
    from csr_core.training.trainer import TrainConfig, train

    rng = np.random.default_rng(0)
    n = 8
    views = [[[f"p{i}v{v}c{j}" for j in range(2)] for i in range(n)] for v in range(3)]
    pools = CaptionPools.from_views(views)
    val = ValData(rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(4, 5)).astype(np.float32),
                  ["a", "b", "c", "d"], np.arange(4))
    data = TrainData([f"{i}.jpg" for i in range(n)], rng.normal(size=(n, 6)).astype(np.float32), pools,
                     rng.normal(size=(len(pools.texts), 5)).astype(np.float32), val)
    trace: list = []
    train(TrainConfig(max_steps=12, batch_size=4, eval_every=6, out_dim=4, min_steps=12, warmup_steps=2), data,
          trace=trace)
    for step, (rows, _, caption_rows) in enumerate(trace):
        epoch = step // 2  # 8 photos, batches of 4: two steps per epoch
        assert all(pools.texts[j].startswith(f"p{r}v{epoch % 3}") for r, j in zip(rows, caption_rows))
