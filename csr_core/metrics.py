"""Retrieval metrics with CLIP_benchmark's meaning: per-query rank of the first correct item, R@K, mean recall.

A query *hits at K* when any correct gallery item is in its top K (``clip_benchmark/metrics/zeroshot_retrieval.py``:
``recall_at_k(...) > 0``). We keep the whole 1-based rank of the first correct item instead of a top-K list, because
ranks give every K at once, median/mean rank, bootstrap CIs and paired tests.

Tie rule (pessimistic, deterministic, independent of gallery order): a correct item tied with a wrong one counts as
ranked *after* it, i.e. ``rank = 1 + #{wrong items with score >= best correct score}``. CLIP_benchmark instead takes
whatever order ``torch.topk`` returns among tied scores, which on CPU is neither index order nor stable across
sizes. With ``G`` wrong items strictly above the best correct score and ``E`` wrong items equal to it, both agree on
"hit at K" unless ``G < K <= G + E`` (a wrong item tied with the best correct one straddles the cut-off); there our
answer is "miss" and theirs depends on torch's internal order. Our hits are therefore always a subset of theirs.

Scores are the float32 dot products of the given embeddings (cosine similarity when rows are L2-normalised, as
CLIP_benchmark does). The matrix is processed in blocks of ``chunk_size`` query rows (by default as many as fit in
``BLOCK_ELEMENTS`` scores, 128 MiB): memory is one block of ``chunk_size x n_gallery`` float32 plus two boolean masks
of the same shape, never the whole matrix. ``image_text_ranks`` (what evaluation uses), ``t2i_ranks``,
``i2t_ranks`` and ``retrieval_metrics`` share the same text x image blocks (both directions come
from one matmul pass), so they agree bit for bit; a path that computes a score another way (e.g.
``first_hit_ranks(image, text, ...)``) can only differ where two scores lie within float32 rounding (~1e-7).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from csr_core.errors import DataError

#: ``chunk_size=None`` (the default): as many query rows per block as fit in this many float32 scores (128 MiB).
#: Fewer, larger matmuls run nearer the speed of one full matmul (2048-row blocks cost ~1.3x on two cores).
DEFAULT_CHUNK: int | None = None
BLOCK_ELEMENTS = 2**25
# Band entries kept for the one-pass column ranks before falling back to a second exact pass (memory cap).
_BAND_LIMIT = 4_000_000
# Width of that band in units of the float32 rounding bound; any value >= 1 gives the same ranks (tests widen it).
_BAND_SLACK = 2.0


# ---------------------------------------------------------------------------------------------------------------
# validation helpers
# ---------------------------------------------------------------------------------------------------------------
def _embeddings(x, name: str) -> np.ndarray:
    """A finite, C-contiguous float32 matrix; float32 because that is what the encoders and CLIP_benchmark use."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"{name}: expected a 2-D (rows x dim) embedding matrix, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{name}: no rows; retrieval needs at least one query and one gallery item")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    _check_finite(arr, name)
    return arr


def _check_finite(arr: np.ndarray, name: str) -> None:
    finite = np.isfinite(arr)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise DataError(f"{name}: row {row} holds NaN or inf; re-encode it or drop the item")


def _labels(x, name: str, length: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1 or len(arr) != length:
        raise DataError(f"{name}: expected {length} labels (one per row), got shape {arr.shape}")
    return arr


def _group_ids(query_group, gallery_group, n_query: int, n_gallery: int) -> tuple[np.ndarray, np.ndarray]:
    """Map arbitrary group labels of both sides to dense integer ids, so equality is an integer compare."""
    qg = _labels(query_group, "query_group", n_query)
    gg = _labels(gallery_group, "gallery_group", n_gallery)
    try:
        _, inverse = np.unique(np.concatenate([qg, gg]), return_inverse=True)
    except TypeError as exc:  # e.g. mixed str/int labels
        raise DataError(f"query_group/gallery_group: labels are not comparable ({exc})") from exc
    inverse = inverse.reshape(-1).astype(np.int64)
    return inverse[:n_query], inverse[n_query:]


def _caption_image(caption_image, n_text: int, n_image: int) -> np.ndarray:
    ci = _labels(caption_image, "caption_image", n_text)
    if ci.dtype.kind not in "iu":
        raise DataError(f"caption_image: expected integer image rows, got dtype {ci.dtype}")
    bad = np.flatnonzero((ci < 0) | (ci >= n_image))
    if len(bad):
        i = int(bad[0])
        raise DataError(f"caption_image[{i}] = {int(ci[i])} is not an image row (there are {n_image} images)")
    return ci.astype(np.int64)


class _Index:
    """For every group id, the gallery rows in it (CSR layout): the correct items of a query in O(1)."""

    def __init__(self, gallery_gid: np.ndarray, n_groups: int):
        self.order = np.argsort(gallery_gid, kind="stable")
        self.counts = np.bincount(gallery_gid, minlength=n_groups)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])

    def pairs(self, query_gid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(local query row, gallery column, segment offsets) of every correct pair for these queries."""
        cnt = self.counts[query_gid]
        offsets = np.concatenate([[0], np.cumsum(cnt)[:-1]])
        total = int(cnt.sum())
        rows = np.repeat(np.arange(len(query_gid)), cnt)
        within = np.arange(total) - np.repeat(offsets, cnt)
        cols = self.order[np.repeat(self.starts[query_gid], cnt) + within]
        return rows, cols, offsets


def _require_correct(counts_per_query: np.ndarray, what: str, gallery_what: str) -> None:
    missing = np.flatnonzero(counts_per_query == 0)
    if len(missing):
        shown = ", ".join(str(int(i)) for i in missing[:10])
        more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
        raise DataError(
            f"{what} {shown}{more} has no correct item among the {gallery_what}; every query needs at least one "
            f"(check the ground truth, or drop those queries)"
        )


# ---------------------------------------------------------------------------------------------------------------
# the core pass
# ---------------------------------------------------------------------------------------------------------------
def _row_ranks_block(block: np.ndarray, rows: np.ndarray, cols: np.ndarray, offsets: np.ndarray,
                     mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pessimistic ranks of the block's rows; also returns the exact correct scores (for the column side)."""
    vals = block[rows, cols]
    best = np.maximum.reduceat(vals, offsets)
    correct_ge = np.add.reduceat((vals >= best[rows]).astype(np.int64), offsets)
    np.greater_equal(block, best[:, None], out=mask)
    all_ge = np.count_nonzero(mask, axis=1)
    return 1 + all_ge - correct_ge, vals


def _sparse_true(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero`` of a C-contiguous 2-D boolean mask that is almost all False, ~10x faster.

    The band of near-ties holds a few entries per column; scanning its bytes eight at a time as uint64 words finds
    the few non-zero words, and only those are expanded.
    """
    flat = mask.reshape(-1)
    n_words = flat.size // 8
    hit_words = np.flatnonzero(flat[: n_words * 8].view(np.uint64))
    idx = (hit_words[:, None] * 8 + np.arange(8)).ravel()
    idx = np.concatenate([idx[flat[idx]], n_words * 8 + np.flatnonzero(flat[n_words * 8 :])])
    return np.divmod(idx, mask.shape[1])


def _blocks(query: np.ndarray, gallery: np.ndarray, chunk_size: int):
    """Yield (start, block) with block = query[start:start+m] @ gallery.T, reusing one buffer."""
    buf = np.empty((min(chunk_size, len(query)), len(gallery)), dtype=np.result_type(query, gallery))
    gallery_t = gallery.T
    for start in range(0, len(query), chunk_size):
        q = query[start : start + chunk_size]
        out = buf[: len(q)]
        np.matmul(q, gallery_t, out=out)
        yield start, out


def _rank_pass(query: np.ndarray, gallery: np.ndarray, query_gid: np.ndarray, gallery_gid: np.ndarray,
               chunk_size: int, columns: bool,
               empty_columns_ok: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Row ranks (queries -> gallery) and, if ``columns``, column ranks (gallery -> queries) from ONE matmul pass.

    Column ranks need each column's best correct score before counting, but that score is only known once every
    block is seen. We therefore start from a float64 estimate with a rigorous float32 error bound ``delta``
    (|fl32 dot - exact| <= d*u*|q||g|), count entries >= estimate - delta, keep the few entries inside the band
    [estimate - delta, estimate + delta] and settle them against the exact (block) best score at the end.
    All comparisons use the block values themselves, so ranks obey the tie rule exactly for the scores computed.
    ``empty_columns_ok``: gallery items with no correct query (images without a caption) are allowed; their column
    ranks are meaningless (0) and the caller leaves them out.
    """
    n_groups = int(max(query_gid.max(initial=-1), gallery_gid.max(initial=-1))) + 1
    index = _Index(gallery_gid, n_groups)
    _require_correct(index.counts[query_gid], "query", f"{len(gallery)} gallery items")
    if columns:
        q_index = _Index(query_gid, n_groups)
        has_correct = q_index.counts[gallery_gid] > 0
        if not empty_columns_ok:
            _require_correct(q_index.counts[gallery_gid], "image (i2t query)", f"{len(query)} captions")
        lo, hi = _column_band(query, gallery, index, query_gid, chunk_size)
        col_ge = np.zeros(len(gallery), dtype=np.int64)
        col_correct_ge = np.zeros(len(gallery), dtype=np.int64)
        col_best = np.full(len(gallery), -np.inf, dtype=np.float64)
        band_rows, band_cols, band_vals = [], [], []
        band_size = 0

    band_limit = _BAND_LIMIT
    row_ranks = np.empty(len(query), dtype=np.int64)
    m = min(chunk_size, len(query))
    mask = np.empty((m, len(gallery)), dtype=bool)
    mask2 = np.empty((m, len(gallery)), dtype=bool) if columns else None
    for start, block in _blocks(query, gallery, chunk_size):
        n = len(block)
        rows, cols, offsets = index.pairs(query_gid[start : start + n])
        ranks, vals = _row_ranks_block(block, rows, cols, offsets, mask[:n])
        row_ranks[start : start + n] = ranks
        if not columns:
            continue
        assert mask2 is not None  # allocated whenever columns are ranked
        ge, band = mask[:n], mask2[:n]
        np.greater_equal(block, lo[None, :], out=ge)
        col_ge += np.count_nonzero(ge, axis=0)
        np.less_equal(block, hi[None, :], out=band)
        np.logical_and(band, ge, out=band)
        np.maximum.at(col_best, cols, vals)
        np.add.at(col_correct_ge, cols, (vals >= lo[cols]).astype(np.int64))
        if band_size <= band_limit:
            r, c = _sparse_true(band)
            band_size += len(r)
            band_rows.append(r + start)
            band_cols.append(c)
            band_vals.append(block[r, c])
            if band_size > band_limit:  # too many near-ties to keep: free them, a second pass will settle
                band_rows, band_cols, band_vals = [], [], []

    if not columns:
        return row_ranks, None
    # Pathological ties (e.g. identical embeddings) overflow the band; a BLAS less accurate than IEEE float32
    # could break the bound. Either way, settle exactly with a second pass over the same blocks.
    in_band = (col_best >= lo) & (col_best <= hi)
    if band_size > band_limit or not in_band[has_correct].all():
        col_ranks = _column_ranks_second_pass(query, gallery, query_gid, gallery_gid, chunk_size, col_best)
    else:
        r = np.concatenate(band_rows)
        c = np.concatenate(band_cols)
        v = np.concatenate(band_vals)
        below = (query_gid[r] != gallery_gid[c]) & (v < col_best[c])
        settled = np.bincount(c[below], minlength=len(gallery))
        col_ranks = 1 + col_ge - col_correct_ge - settled
    return row_ranks, np.where(has_correct, col_ranks, 0)


def _column_band(query: np.ndarray, gallery: np.ndarray, index: _Index, query_gid: np.ndarray,
                 chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """[lo, hi] per gallery column that surely holds its best correct float32 score."""
    est = np.full(len(gallery), -np.inf)
    norm_bound = np.zeros(len(gallery))  # max over correct pairs of |q| * |g|
    step = max(int(chunk_size), 1)
    for start in range(0, len(query), step):
        rows, cols, _ = index.pairs(query_gid[start : start + step])
        q64 = query[rows + start].astype(np.float64)
        g64 = gallery[cols].astype(np.float64)
        np.maximum.at(est, cols, np.einsum("ij,ij->i", q64, g64))
        norms = np.sqrt(np.einsum("ij,ij->i", q64, q64) * np.einsum("ij,ij->i", g64, g64))
        np.maximum.at(norm_bound, cols, norms)
    d = query.shape[1]
    u = 2.0**-24
    gamma = d * u / (1 - d * u)
    delta = _BAND_SLACK * gamma * norm_bound + 1e-30  # slack > 1: margin for the float64 estimate itself
    # float32 bounds rounded outwards, so comparisons against float32 blocks need no float64 upcast
    lo, hi = (est - delta).astype(np.float32), (est + delta).astype(np.float32)
    lo = np.where(lo > est - delta, np.nextafter(lo, np.float32(-np.inf)), lo)
    hi = np.where(hi < est + delta, np.nextafter(hi, np.float32(np.inf)), hi)
    return lo, hi


def _column_ranks_second_pass(query, gallery, query_gid, gallery_gid, chunk_size, col_best) -> np.ndarray:
    """Exact column ranks once every column's best correct block score is known (same blocks, same values)."""
    wrong_ge = np.zeros(len(gallery), dtype=np.int64)
    for start, block in _blocks(query, gallery, chunk_size):
        wrong = query_gid[start : start + len(block), None] != gallery_gid[None, :]
        wrong_ge += np.count_nonzero((block >= col_best[None, :]) & wrong, axis=0)
    return 1 + wrong_ge


# ---------------------------------------------------------------------------------------------------------------
# public ranks API
# ---------------------------------------------------------------------------------------------------------------
def first_hit_ranks(query_emb, gallery_emb, query_group, gallery_group, chunk_size: int | None = DEFAULT_CHUNK) -> np.ndarray:
    """1-based rank of the first correct gallery item per query (correct iff same group), pessimistic on ties.

    Memory: one ``chunk_size x len(gallery)`` float32 block plus a boolean mask of that shape.
    Raises DataError naming the queries that have no correct item.
    """
    query = _embeddings(query_emb, "query_emb")
    gallery = _embeddings(gallery_emb, "gallery_emb")
    _same_dim(query, gallery)
    qgid, ggid = _group_ids(query_group, gallery_group, len(query), len(gallery))
    ranks, _ = _rank_pass(query, gallery, qgid, ggid, _chunk(chunk_size, len(gallery)), columns=False)
    return ranks


def first_hit_ranks_from_similarity(sim, query_group, gallery_group, chunk_size: int | None = DEFAULT_CHUNK) -> np.ndarray:
    """Same ranks from a similarity matrix the caller already holds (rows = queries), in its own dtype."""
    s = np.asarray(sim)
    if s.ndim != 2 or 0 in s.shape:
        raise DataError(f"sim: expected a non-empty 2-D (queries x gallery) matrix, got shape {s.shape}")
    if s.dtype.kind != "f":
        s = s.astype(np.float64)
    _check_finite(s, "sim")
    qgid, ggid = _group_ids(query_group, gallery_group, s.shape[0], s.shape[1])
    n_groups = int(max(qgid.max(), ggid.max())) + 1
    index = _Index(ggid, n_groups)
    _require_correct(index.counts[qgid], "query", f"{s.shape[1]} gallery items")
    chunk = _chunk(chunk_size, s.shape[1])
    out = np.empty(s.shape[0], dtype=np.int64)
    mask = np.empty((min(chunk, s.shape[0]), s.shape[1]), dtype=bool)
    for start in range(0, s.shape[0], chunk):
        block = s[start : start + chunk]
        rows, cols, offsets = index.pairs(qgid[start : start + len(block)])
        out[start : start + len(block)], _ = _row_ranks_block(block, rows, cols, offsets, mask[: len(block)])
    return out


def t2i_ranks(text_emb, image_emb, caption_image, chunk_size: int | None = DEFAULT_CHUNK) -> np.ndarray:
    """Text -> image: each caption's one correct image is ``caption_image[caption]``."""
    text, image, ci = _pair(text_emb, image_emb, caption_image)
    ranks, _ = _rank_pass(text, image, ci, np.arange(len(image)), _chunk(chunk_size, len(image)), columns=False)
    return ranks


def i2t_ranks(image_emb, text_emb, caption_image, chunk_size: int | None = DEFAULT_CHUNK) -> np.ndarray:
    """Image -> text: every caption of the image is correct. Every image needs at least one caption.

    Computed from the same text x image blocks as :func:`t2i_ranks` / :func:`retrieval_metrics`, so all three
    see bit-identical scores.
    """
    text, image, ci = _pair(text_emb, image_emb, caption_image)
    _, ranks = _rank_pass(text, image, ci, np.arange(len(image)), _chunk(chunk_size, len(image)), columns=True)
    assert ranks is not None  # columns=True always ranks the columns
    return ranks


@dataclass(frozen=True)
class ImageTextRanks:
    """Both directions of one caption set against one image set, from one pass over the text x image scores."""

    t2i: np.ndarray  # one rank per caption (every image is in the gallery)
    i2t: np.ndarray  # one rank per image in ``query_images``
    query_images: np.ndarray  # the images that have at least one caption: the only image->text queries


def image_text_ranks(text_emb, image_emb, caption_image, chunk_size: int | None = DEFAULT_CHUNK) -> ImageTextRanks:
    """What an evaluation needs: t2i over every image, i2t for the images that have a caption (one matmul pass).

    Images without a caption stay in the t2i gallery as distractors but are not i2t queries (they have no correct
    item). Ranks equal :func:`t2i_ranks` / :func:`i2t_ranks` on the captioned images bit for bit.
    """
    text, image, ci = _pair(text_emb, image_emb, caption_image)
    t2i, i2t = _rank_pass(text, image, ci, np.arange(len(image)), _chunk(chunk_size, len(image)), columns=True,
                          empty_columns_ok=True)
    assert i2t is not None  # columns=True always ranks the columns
    query_images = np.unique(ci)
    return ImageTextRanks(t2i=t2i, i2t=i2t[query_images], query_images=query_images)


def parallel_ranks(query_emb, gallery_emb, chunk_size: int | None = DEFAULT_CHUNK) -> np.ndarray:
    """Text -> text on parallel data: query row i's only correct match is gallery row i."""
    query = _embeddings(query_emb, "query_emb")
    gallery = _embeddings(gallery_emb, "gallery_emb")
    _same_dim(query, gallery)
    if len(query) != len(gallery):
        raise DataError(f"parallel_ranks: {len(query)} queries but {len(gallery)} gallery rows; parallel data "
                        "pairs row i with row i")
    ids = np.arange(len(query))
    ranks, _ = _rank_pass(query, gallery, ids, ids, _chunk(chunk_size, len(gallery)), columns=False)
    return ranks


def _pair(text_emb, image_emb, caption_image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    text = _embeddings(text_emb, "text_emb")
    image = _embeddings(image_emb, "image_emb")
    _same_dim(text, image)
    return text, image, _caption_image(caption_image, len(text), len(image))


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise DataError(f"embedding widths differ: {a.shape[1]} vs {b.shape[1]} (different encoders?)")


def _chunk(chunk_size: int | None, n_gallery: int) -> int:
    """Query rows per block: the given size, or (None) as many as fit in ``BLOCK_ELEMENTS`` scores."""
    if chunk_size is None:
        return max(1, BLOCK_ELEMENTS // max(n_gallery, 1))
    if isinstance(chunk_size, bool) or int(chunk_size) != chunk_size or chunk_size < 1:
        raise DataError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    return int(chunk_size)


# ---------------------------------------------------------------------------------------------------------------
# summaries
# ---------------------------------------------------------------------------------------------------------------
def _ranks(ranks) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1 or len(r) == 0:
        raise DataError(f"ranks: expected a non-empty 1-D array of 1-based ranks, got shape {r.shape}")
    if r.dtype.kind not in "iu" or (r < 1).any():
        raise DataError("ranks: expected integers >= 1 (1-based rank of the first correct item)")
    return r


def _ks(ks) -> tuple[int, ...]:
    ks = (ks,) if isinstance(ks, (int, np.integer)) else tuple(ks)
    if not ks or any(isinstance(k, bool) or int(k) != k or k < 1 for k in ks):
        raise DataError(f"ks: expected positive integers, got {ks!r}")
    return tuple(int(k) for k in ks)


def hits_at_k(ranks, k: int) -> np.ndarray:
    """Per-query hit vector (rank <= K): the input of bootstrap CIs and paired tests."""
    (k,) = _ks(k)
    return _ranks(ranks) <= k


def recall_at_k(ranks, ks: Iterable[int] | int = (1, 5, 10)) -> dict[int, float]:
    """R@K in percent for every K. K beyond the gallery size is allowed (every query then hits: 100)."""
    r = _ranks(ranks)
    return {k: 100.0 * int(np.count_nonzero(r <= k)) / len(r) for k in _ks(ks)}


def median_rank(ranks) -> float:
    return float(np.median(_ranks(ranks)))


def mean_rank(ranks) -> float:
    return float(np.mean(_ranks(ranks)))


def mean_recall(t2i, i2t) -> float:
    """Mean of the six R@{1,5,10} (percent). Each side: a rank array, or a recall dict holding keys 1, 5, 10."""
    values = []
    for name, side in (("t2i", t2i), ("i2t", i2t)):
        if isinstance(side, Mapping):
            missing = [k for k in (1, 5, 10) if k not in side]
            if missing:
                raise DataError(f"mean_recall: {name} recall dict lacks K={missing}; it needs R@1, R@5 and R@10")
            values += [float(side[k]) for k in (1, 5, 10)]
        else:
            values += list(recall_at_k(side, (1, 5, 10)).values())
    return float(np.mean(values))


@dataclass(frozen=True)
class RetrievalResult:
    """Both directions of an image-text evaluation: per-query ranks plus their summary numbers (percent)."""

    t2i_ranks: np.ndarray
    i2t_ranks: np.ndarray
    ks: tuple[int, ...]
    t2i_recall: dict[int, float] = field(default_factory=dict)
    i2t_recall: dict[int, float] = field(default_factory=dict)
    mean_recall: float = float("nan")
    t2i_median_rank: float = float("nan")
    i2t_median_rank: float = float("nan")
    t2i_mean_rank: float = float("nan")
    i2t_mean_rank: float = float("nan")

    def summary(self) -> dict[str, float]:
        """Flat name -> value map (e.g. ``t2i_R@5``), handy for printing and tables."""
        out: dict[str, float] = {}
        for direction in ("t2i", "i2t"):
            for k, v in getattr(self, f"{direction}_recall").items():
                out[f"{direction}_R@{k}"] = v
            out[f"{direction}_median_rank"] = getattr(self, f"{direction}_median_rank")
            out[f"{direction}_mean_rank"] = getattr(self, f"{direction}_mean_rank")
        out["mean_recall"] = self.mean_recall
        return out


def retrieval_metrics(text_emb, image_emb, caption_image, ks: Iterable[int] = (1, 5, 10),
                      chunk_size: int | None = DEFAULT_CHUNK) -> RetrievalResult:
    """Text->image and image->text ranks from one chunked pass over text x image scores, plus R@K and ranks.

    Every image must have at least one caption (subset the images first otherwise).
    """
    text, image, ci = _pair(text_emb, image_emb, caption_image)
    ks = _ks(ks)
    t2i, i2t = _rank_pass(text, image, ci, np.arange(len(image)), _chunk(chunk_size, len(image)), columns=True)
    assert i2t is not None  # columns=True always ranks the columns
    return RetrievalResult(
        t2i_ranks=t2i,
        i2t_ranks=i2t,
        ks=ks,
        t2i_recall=recall_at_k(t2i, ks),
        i2t_recall=recall_at_k(i2t, ks),
        mean_recall=mean_recall(t2i, i2t),
        t2i_median_rank=median_rank(t2i),
        i2t_median_rank=median_rank(i2t),
        t2i_mean_rank=mean_rank(t2i),
        i2t_mean_rank=mean_rank(i2t),
    )
