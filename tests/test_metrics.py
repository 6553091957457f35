"""R@K and ranks must mean exactly what CLIP_benchmark means; ties follow our documented pessimistic rule."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from clip_benchmark.metrics import zeroshot_retrieval as cb

from csr_core import metrics as M
from csr_core.errors import DataError


# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------
def _normalised(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _caption_image(rng, n_images, max_caps):
    """Every image gets 1..max_caps captions, in shuffled caption order."""
    per = rng.integers(1, max_caps + 1, n_images)
    ci = np.repeat(np.arange(n_images), per)
    rng.shuffle(ci)
    return ci


def _clip_hits(scores: np.ndarray, positive: np.ndarray, k: int, batch_size: int = 7) -> np.ndarray:
    """CLIP_benchmark's per-query hit vector: ``batchify(recall_at_k, ...) > 0`` as in its ``evaluate``."""
    s = torch.from_numpy(np.ascontiguousarray(scores))
    p = torch.from_numpy(np.ascontiguousarray(positive))
    return (cb.batchify(cb.recall_at_k, s, p, batch_size, "cpu", k=k) > 0).numpy()


def _positive(caption_image, n_images):
    pos = np.zeros((len(caption_image), n_images), dtype=bool)
    pos[np.arange(len(caption_image)), caption_image] = True
    return pos


def _brute_ranks(sim, query_group, gallery_group):
    """The documented rule, literally: 1 + #wrong items scoring >= the best correct one."""
    out = []
    for i in range(sim.shape[0]):
        correct = gallery_group == query_group[i]
        best = sim[i, correct].max()
        out.append(1 + int(np.sum((sim[i] >= best) & ~correct)))
    return np.array(out)


# ---------------------------------------------------------------------------------------------------------------
# equality with CLIP_benchmark
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed,n_images,max_caps,dim", [(0, 1, 3, 8), (1, 12, 1, 4), (2, 40, 5, 16), (3, 97, 7, 32)])
def test_recall_equals_clip_benchmark_on_random_cases(seed, n_images, max_caps, dim):
    rng = np.random.default_rng(seed)
    ci = _caption_image(rng, n_images, max_caps)
    text, image = _normalised(rng, len(ci), dim), _normalised(rng, n_images, dim)
    scores = (torch.from_numpy(text) @ torch.from_numpy(image).T).numpy()  # what clip_benchmark computes
    positive = _positive(ci, n_images)
    res = M.retrieval_metrics(text, image, ci, ks=(1, 5, 10))
    for k in sorted({1, 5, 10, n_images}):
        if k <= n_images:  # torch.topk in clip_benchmark cannot take K beyond the gallery
            np.testing.assert_array_equal(M.hits_at_k(res.t2i_ranks, k), _clip_hits(scores, positive, k))
            clip_r = 100 * float(_clip_hits(scores, positive, k).mean())
            assert M.recall_at_k(res.t2i_ranks, [k])[k] == pytest.approx(clip_r, abs=1e-9)
        if k <= len(ci):
            np.testing.assert_array_equal(M.hits_at_k(res.i2t_ranks, k), _clip_hits(scores.T, positive.T, k))


def test_clip_benchmark_evaluate_end_to_end_matches_retrieval_metrics():
    """Run CLIP_benchmark's own ``evaluate`` (real metric code) on fixed embeddings via a pass-through model."""
    rng = np.random.default_rng(11)
    n_images, dim = 30, 16
    per = rng.integers(1, 6, n_images)
    ci = np.repeat(np.arange(n_images), per)  # evaluate lists captions image by image
    text, image = _normalised(rng, len(ci), dim), _normalised(rng, n_images, dim)
    text_t, image_t = torch.from_numpy(text), torch.from_numpy(image)

    class PassThrough(torch.nn.Module):
        def encode_image(self, x):
            return x

        def encode_text(self, tok):
            return text_t[tok]

    batches, start = [], 0
    for b0 in range(0, n_images, 8):
        imgs = list(range(b0, min(b0 + 8, n_images)))
        caps = []
        for i in imgs:
            caps.append([str(start + j) for j in range(per[i])])
            start += per[i]
        batches.append((image_t[imgs], caps))

    def tokenizer(texts):
        return torch.tensor([int(t) for t in texts])

    ks = [1, 5, 10]
    ref = cb.evaluate(PassThrough(), batches, tokenizer, "cpu", amp=False, recall_k_list=ks)
    res = M.retrieval_metrics(text, image, ci, ks=ks)
    for k in ks:
        assert res.t2i_recall[k] == pytest.approx(100 * ref[f"image_retrieval_recall@{k}"], abs=1e-4)
        assert res.i2t_recall[k] == pytest.approx(100 * ref[f"text_retrieval_recall@{k}"], abs=1e-4)


def test_ties_agree_with_clip_benchmark_wherever_its_answer_is_unambiguous():
    """Integer embeddings make exact ties in any summation order. Where a wrong item tied with the best correct
    score straddles the cut-off (G < K <= G + E), torch.topk's order decides for CLIP_benchmark; elsewhere we agree,
    and our hits are always a subset of theirs."""
    rng = np.random.default_rng(5)
    checked_unambiguous_ties = ambiguous = 0
    for trial in range(30):
        n_images = int(rng.integers(2, 25))
        ci = _caption_image(rng, n_images, 4)
        text = rng.integers(-1, 2, (len(ci), 3)).astype(np.float32)
        image = rng.integers(-1, 2, (n_images, 3)).astype(np.float32)
        scores = text @ image.T
        positive = _positive(ci, n_images)
        res = M.retrieval_metrics(text, image, ci, chunk_size=int(rng.integers(1, 9)))
        np.testing.assert_array_equal(res.t2i_ranks, _brute_ranks(scores, ci, np.arange(n_images)))
        np.testing.assert_array_equal(res.i2t_ranks, _brute_ranks(scores.T, np.arange(n_images), ci))
        for ranks, s, pos in ((res.t2i_ranks, scores, positive), (res.i2t_ranks, scores.T, positive.T)):
            best = np.where(pos, s, -np.inf).max(1, keepdims=True)
            above = np.sum((s > best) & ~pos, axis=1)
            tied = np.sum((s == best) & ~pos, axis=1)
            for k in range(1, s.shape[1] + 1):
                ours, theirs = M.hits_at_k(ranks, k), _clip_hits(s, pos, k)
                amb = (above < k) & (k <= above + tied)
                assert not (ours & ~theirs).any(), "pessimistic hits must be a subset of CLIP_benchmark's"
                np.testing.assert_array_equal(ours[~amb], theirs[~amb])
                checked_unambiguous_ties += int(np.sum(~amb & (tied > 0)))
                ambiguous += int(amb.sum())
    assert checked_unambiguous_ties > 100 and ambiguous > 100  # the case mix really exercised both situations


def test_tie_rule_is_pessimistic_and_independent_of_gallery_order():
    sim = np.array([[0.9, 0.9, 0.5, 0.9], [0.2, 0.7, 0.7, 0.1]], dtype=np.float32)
    # query 0: correct item 1 ties with wrong items 0 and 3 -> rank 3; query 1: correct item 2 ties with 1 -> rank 2
    ranks = M.first_hit_ranks_from_similarity(sim, [1, 2], [0, 1, 2, 3])
    np.testing.assert_array_equal(ranks, [3, 2])
    for perm in ([3, 2, 1, 0], [1, 0, 3, 2], [2, 3, 0, 1]):
        np.testing.assert_array_equal(
            M.first_hit_ranks_from_similarity(sim[:, perm], [1, 2], np.array([0, 1, 2, 3])[perm]), [3, 2])
    # two correct items tied with each other are not "wrong": rank 1
    assert M.first_hit_ranks_from_similarity(np.array([[0.4, 0.4, 0.1]]), [7], [7, 7, 3])[0] == 1


def test_ranks_match_the_literal_rule_for_both_directions_with_ties():
    rng = np.random.default_rng(9)
    for trial in range(40):
        n_images = int(rng.integers(1, 20))
        ci = _caption_image(rng, n_images, 5)
        lo, hi = (-2, 3) if trial % 2 else (-1, 2)
        text = rng.integers(lo, hi, (len(ci), 4)).astype(np.float32)
        image = rng.integers(lo, hi, (n_images, 4)).astype(np.float32)
        sim = text @ image.T
        res = M.retrieval_metrics(text, image, ci, chunk_size=int(rng.integers(1, len(ci) + 2)))
        np.testing.assert_array_equal(res.t2i_ranks, _brute_ranks(sim, ci, np.arange(n_images)))
        np.testing.assert_array_equal(res.i2t_ranks, _brute_ranks(sim.T, np.arange(n_images), ci))


def test_k_larger_than_gallery_is_allowed_and_clip_benchmark_cannot():
    rng = np.random.default_rng(2)
    ci = _caption_image(rng, 4, 3)
    text, image = _normalised(rng, len(ci), 8), _normalised(rng, 4, 8)
    res = M.retrieval_metrics(text, image, ci, ks=(1, 4, 5, 100))
    assert res.t2i_recall[5] == res.t2i_recall[100] == res.t2i_recall[4] == 100.0
    assert res.i2t_recall[100] == 100.0
    with pytest.raises(RuntimeError):  # torch.topk: "selected index k out of range"
        _clip_hits(text @ image.T, _positive(ci, 4), 5)


# ---------------------------------------------------------------------------------------------------------------
# chunking = full matrix; memory bound
# ---------------------------------------------------------------------------------------------------------------
def test_chunked_ranks_equal_full_matrix_ranks():
    rng = np.random.default_rng(3)
    n_images = 53
    ci = _caption_image(rng, n_images, 5)
    text, image = _normalised(rng, len(ci), 32), _normalised(rng, n_images, 32)
    full_t2i = M.first_hit_ranks_from_similarity(text @ image.T, ci, np.arange(n_images))
    full_i2t = M.first_hit_ranks_from_similarity(image @ text.T, np.arange(n_images), ci)
    assert len(np.unique(full_t2i)) > 5  # not a trivial all-rank-1 case
    for chunk in (1, 7, len(ci), 10 * len(ci)):
        np.testing.assert_array_equal(M.t2i_ranks(text, image, ci, chunk_size=chunk), full_t2i)
        np.testing.assert_array_equal(M.i2t_ranks(image, text, ci, chunk_size=chunk), full_i2t)
        np.testing.assert_array_equal(M.first_hit_ranks(image, text, np.arange(n_images), ci, chunk_size=chunk),
                                      full_i2t)
        res = M.retrieval_metrics(text, image, ci, chunk_size=chunk)
        np.testing.assert_array_equal(res.t2i_ranks, full_t2i)
        np.testing.assert_array_equal(res.i2t_ranks, full_i2t)
    for chunk in (1, 7, n_images):
        np.testing.assert_array_equal(
            M.first_hit_ranks_from_similarity(image @ text.T, np.arange(n_images), ci, chunk_size=chunk), full_i2t)


def test_peak_memory_stays_far_below_the_full_matrix():
    rng = np.random.default_rng(4)
    n_images, n_text = 600, 3000
    ci = np.concatenate([np.arange(n_images), rng.integers(0, n_images, n_text - n_images)])
    text, image = _normalised(rng, n_text, 16), _normalised(rng, n_images, 16)
    full_bytes = n_text * n_images * 4
    tracemalloc.start()
    try:
        M.retrieval_metrics(text, image, ci, chunk_size=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < full_bytes / 8, f"peak {peak} bytes vs full matrix {full_bytes}"


def test_second_pass_fallback_gives_the_same_column_ranks(monkeypatch):
    rng = np.random.default_rng(6)
    ci = _caption_image(rng, 15, 4)
    text = rng.integers(-1, 2, (len(ci), 3)).astype(np.float32)
    image = rng.integers(-1, 2, (15, 3)).astype(np.float32)
    expected = _brute_ranks(image @ text.T, np.arange(15), ci)
    one_pass = M.i2t_ranks(image, text, ci, chunk_size=4)
    monkeypatch.setattr(M, "_BAND_LIMIT", 0)
    np.testing.assert_array_equal(one_pass, expected)
    np.testing.assert_array_equal(M.i2t_ranks(image, text, ci, chunk_size=4), expected)
    same = np.ones((6, 3), dtype=np.float32)  # every score tied: worst case for the band
    np.testing.assert_array_equal(M.i2t_ranks(same[:3], same, [0, 0, 1, 1, 2, 2]), [5, 5, 5])


def test_one_pass_band_settlement_is_exact_for_any_band_width(monkeypatch):
    """Widening the band puts many wrong items below and above the best correct score into it: the settlement
    step (not the second-pass fallback) must still give the literal rule's ranks."""
    rng = np.random.default_rng(12)

    def no_second_pass(*args):
        raise AssertionError("second pass used")

    monkeypatch.setattr(M, "_column_ranks_second_pass", no_second_pass)
    for slack, trial in [(2.0, 0), (1e4, 1), (1e6, 2), (1e9, 3)]:
        n_images = 30
        ci = _caption_image(rng, n_images, 5)
        if trial == 3:
            text = rng.integers(-1, 2, (len(ci), 3)).astype(np.float32)
            image = rng.integers(-1, 2, (n_images, 3)).astype(np.float32)
        else:
            text, image = _normalised(rng, len(ci), 16), _normalised(rng, n_images, 16)
        monkeypatch.setattr(M, "_BAND_SLACK", slack)
        res = M.retrieval_metrics(text, image, ci, chunk_size=9)
        sim = text @ image.T
        np.testing.assert_array_equal(res.i2t_ranks, _brute_ranks(sim.T, np.arange(n_images), ci))
        np.testing.assert_array_equal(res.t2i_ranks, _brute_ranks(sim, ci, np.arange(n_images)))


def test_image_text_ranks_keep_captionless_images_as_distractors_only(monkeypatch):
    """What evaluation uses: one pass; images without a caption are t2i distractors and never i2t queries."""
    rng = np.random.default_rng(21)
    n_images = 40
    captioned = np.sort(rng.choice(n_images, 25, replace=False))
    ci = rng.permutation(np.concatenate([captioned, rng.choice(captioned, 60)]))
    for trial, (band_limit, slack) in enumerate([(M._BAND_LIMIT, 2.0), (0, 2.0), (M._BAND_LIMIT, 1e9)]):
        monkeypatch.setattr(M, "_BAND_LIMIT", band_limit)  # 0: the second-pass fallback
        monkeypatch.setattr(M, "_BAND_SLACK", slack)  # wide: the settlement over a crowded band
        if trial == 2:  # many exact ties
            text = rng.integers(-1, 2, (len(ci), 3)).astype(np.float32)
            image = rng.integers(-1, 2, (n_images, 3)).astype(np.float32)
        else:
            text, image = _normalised(rng, len(ci), 16), _normalised(rng, n_images, 16)
        sim = text @ image.T
        want_t2i = _brute_ranks(sim, ci, np.arange(n_images))
        want_i2t = _brute_ranks(sim.T[captioned], captioned, ci)
        for chunk in (1, 7, None):
            got = M.image_text_ranks(text, image, ci, chunk_size=chunk)
            np.testing.assert_array_equal(got.query_images, captioned)
            np.testing.assert_array_equal(got.t2i, want_t2i)
            np.testing.assert_array_equal(got.i2t, want_i2t)
    with pytest.raises(DataError, match="no correct item"):  # the CLIP_benchmark-shaped API stays strict
        M.retrieval_metrics(text, image, ci)


def test_sparse_true_finds_what_nonzero_finds():
    rng = np.random.default_rng(22)
    for shape in [(1, 1), (3, 5), (7, 13), (64, 8), (33, 101)]:
        for density in (0.0, 0.01, 0.3, 1.0):
            mask = rng.random(shape) < density
            got_r, got_c = M._sparse_true(mask)
            want_r, want_c = np.nonzero(mask)
            np.testing.assert_array_equal(got_r, want_r)
            np.testing.assert_array_equal(got_c, want_c)


def test_default_blocks_follow_the_element_budget():
    assert M._chunk(None, 5000) == M.BLOCK_ELEMENTS // 5000
    assert M._chunk(None, 10 * M.BLOCK_ELEMENTS) == 1  # a gallery wider than the budget: one row per block
    assert M._chunk(7, 5000) == 7


# ---------------------------------------------------------------------------------------------------------------
# wrappers, groups, summaries
# ---------------------------------------------------------------------------------------------------------------
def test_parallel_ranks_and_string_groups():
    rng = np.random.default_rng(8)
    q, g = _normalised(rng, 40, 8), _normalised(rng, 40, 8)
    expected = _brute_ranks(q @ g.T, np.arange(40), np.arange(40))
    np.testing.assert_array_equal(M.parallel_ranks(q, g), expected)
    for k in (1, 5):
        np.testing.assert_array_equal(M.hits_at_k(expected, k), _clip_hits(q @ g.T, np.eye(40, dtype=bool), k))
    labels = np.array([f"id{i}" for i in range(40)])
    np.testing.assert_array_equal(M.first_hit_ranks(q, g, labels, labels), expected)
    np.testing.assert_array_equal(M.parallel_ranks(g, g), np.ones(40, dtype=np.int64))


def test_summaries_and_retrieval_result():
    ranks = np.array([1, 2, 3, 10, 11, 50])
    assert M.recall_at_k(ranks, [1, 5, 10, 11]) == {1: 100 / 6, 5: 50.0, 10: 400 / 6, 11: 500 / 6}
    assert M.recall_at_k(ranks, 1) == {1: 100 / 6}
    np.testing.assert_array_equal(M.hits_at_k(ranks, 3), [True, True, True, False, False, False])
    assert M.median_rank(ranks) == 6.5 and M.mean_rank(ranks) == pytest.approx(77 / 6)
    other = np.array([1, 1, 6])
    by_ranks = M.mean_recall(ranks, other)
    by_dicts = M.mean_recall(M.recall_at_k(ranks, (1, 5, 10)), M.recall_at_k(other, (1, 5, 10)))
    expected = np.mean([100 / 6, 50, 400 / 6, 200 / 3, 200 / 3, 100])
    assert by_ranks == pytest.approx(expected) and by_dicts == pytest.approx(expected)
    with pytest.raises(DataError, match="R@1, R@5 and R@10"):
        M.mean_recall({1: 3.0}, other)

    rng = np.random.default_rng(1)
    ci = _caption_image(rng, 20, 3)
    text, image = _normalised(rng, len(ci), 8), _normalised(rng, 20, 8)
    res = M.retrieval_metrics(text, image, ci, ks=(1, 5))
    np.testing.assert_array_equal(res.t2i_ranks, M.t2i_ranks(text, image, ci))
    np.testing.assert_array_equal(res.i2t_ranks, M.i2t_ranks(image, text, ci))
    assert res.t2i_recall == M.recall_at_k(res.t2i_ranks, (1, 5))
    assert res.mean_recall == M.mean_recall(res.t2i_ranks, res.i2t_ranks)
    assert res.i2t_median_rank == M.median_rank(res.i2t_ranks)
    assert res.summary()["t2i_R@5"] == res.t2i_recall[5]
    assert res.t2i_ranks.dtype == np.int64 and len(res.i2t_ranks) == 20


# ---------------------------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------------------------
def test_clear_errors():
    rng = np.random.default_rng(0)
    q, g = _normalised(rng, 5, 4), _normalised(rng, 3, 4)
    with pytest.raises(DataError, match=r"query 2, 4 has no correct item"):
        M.first_hit_ranks(q, g, [0, 1, 9, 2, 8], [0, 1, 2])
    with pytest.raises(DataError, match=r"image \(i2t query\) 2 has no correct item"):
        M.retrieval_metrics(q, g, [0, 1, 0, 1, 1])
    with pytest.raises(DataError, match=r"caption_image\[3\] = 3"):
        M.t2i_ranks(q, g, [0, 1, 2, 3, 0])
    with pytest.raises(DataError, match="integer"):
        M.t2i_ranks(q, g, [0.0, 1.0, 2.0, 0.0, 1.0])
    bad = q.copy()
    bad[3, 1] = np.nan
    with pytest.raises(DataError, match="row 3"):
        M.t2i_ranks(bad, g, [0, 1, 2, 0, 1])
    with pytest.raises(DataError, match="widths differ"):
        M.t2i_ranks(q[:, :3], g, [0, 1, 2, 0, 1])
    with pytest.raises(DataError, match="parallel"):
        M.parallel_ranks(q, g)
    with pytest.raises(DataError, match="chunk_size"):
        M.t2i_ranks(q, g, [0, 1, 2, 0, 1], chunk_size=0)
    with pytest.raises(DataError, match="ks"):
        M.recall_at_k([1, 2], [0])
    with pytest.raises(DataError, match="ranks"):
        M.recall_at_k([0, 2], [1])
    with pytest.raises(DataError, match="2 labels"):
        M.first_hit_ranks_from_similarity(np.zeros((2, 3)), [0], [0, 1, 2])
