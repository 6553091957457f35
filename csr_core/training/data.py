"""Training data for one (tower, arm): caption pools as indices into one feature table, plus validation features.

Tower features come from the on-disk embedding cache keyed by the tower fingerprint (`cached_tower_texts`), so
the English captions every arm shares, and the pools of arms already trained, are never encoded twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from csr_core.errors import CSRError, DataError

#: Validation captions used for early stopping: English only, so model selection never sees target-language text.
VAL_LANG = "en-x-f8k"


@dataclass
class CaptionPools:
    """Per training photo, the rows of `texts` it may draw a caption from; one pool set per view.

    Static switching has one view. Dynamic switching has one view per code-switched variant and the trainer shows
    epoch e the view e mod k, so every epoch sees freshly switched text (up to the bank of k variants).
    """

    texts: list[str]  # unique captions, in first-seen order
    views: list[list[np.ndarray]]  # views[v][i]: int64 indices into `texts`

    @classmethod
    def from_lists(cls, pools: Sequence[Sequence[str]]) -> "CaptionPools":
        return cls.from_views([pools])

    @classmethod
    def from_views(cls, views: Sequence[Sequence[Sequence[str]]]) -> "CaptionPools":
        if not views:
            raise CSRError("caption pools need at least one view")
        n = len(views[0])
        index: dict[str, int] = {}
        out = []
        for v, pools in enumerate(views):
            if len(pools) != n:
                raise CSRError(f"caption pool view {v} has {len(pools)} photos, view 0 has {n}")
            rows = []
            for i, pool in enumerate(pools):
                if not pool:
                    raise CSRError(f"training photo #{i} has an empty caption pool")
                rows.append(np.asarray([index.setdefault(t, len(index)) for t in pool], dtype=np.int64))
            out.append(rows)
        return cls(list(index), out)

    @property
    def pools(self) -> list[np.ndarray]:
        """The first view (the only one under static switching)."""
        return self.views[0]

    @property
    def sizes(self) -> np.ndarray:
        return np.asarray([len(p) for p in self.pools], dtype=np.int64)

    def draw(self, photo_rows: np.ndarray, uniforms: np.ndarray, epoch: int = 0) -> np.ndarray:
        """Caption row for each photo from a uniform in [0, 1): identical draws across arms, only pools differ."""
        pools = self.views[epoch % len(self.views)]
        out = np.empty(len(photo_rows), dtype=np.int64)
        for n, (row, u) in enumerate(zip(photo_rows, uniforms)):
            pool = pools[int(row)]
            out[n] = pool[min(int(u * len(pool)), len(pool) - 1)]
        return out

    def describe(self) -> dict[str, Any]:
        sizes = self.sizes
        return {"captions": int(sum(len(p) for view in self.views for p in view)), "views": len(self.views),
                "unique_captions": len(self.texts), "pool_min": int(sizes.min()), "pool_max": int(sizes.max()),
                "sha256": hashlib.sha256(json.dumps(
                    [[[self.texts[j] for j in p] for p in view] for view in self.views] if len(self.views) > 1
                    else [[self.texts[j] for j in p] for p in self.pools], ensure_ascii=False).encode()).hexdigest()}


@dataclass
class ValData:
    """Validation photos (features) and their English captions (features + ground truth)."""

    image_features: np.ndarray
    text_features: np.ndarray | None  # None when the text tower is trained: recomputed from `texts`
    texts: list[str]
    caption_image: np.ndarray


@dataclass
class TrainData:
    """Everything a trainer needs for one (tower, arm)."""

    image_ids: list[str]
    image_features: np.ndarray  # (n_photos, image_dim)
    pools: CaptionPools
    text_features: np.ndarray | None  # (n_texts, text_dim); None when the text tower is trained
    val: ValData
    info: dict[str, Any] = field(default_factory=dict)


def check_no_test_photos(image_ids: Sequence[str], dataset: str = "flickr8k-multi30k",
                         data_root=None) -> dict[str, Any]:
    """Prove the training photos are the dataset's train split and none is a val or test photo; raise otherwise."""
    from csr_core.datasets import split_image_ids

    splits = split_image_ids(dataset, data_root=data_root)
    ids = set(image_ids)
    for held in ("test", "val"):
        overlap = ids & set(splits.get(held, ()))
        if overlap:
            raise DataError(f"{dataset}: {len(overlap)} training photos are {held} photos, e.g. {sorted(overlap)[:3]}")
    outside = ids - set(splits["train"])
    if outside:
        raise DataError(f"{dataset}: {len(outside)} training photos are not in the train split, e.g. {sorted(outside)[:3]}")
    digest = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    return {"dataset": dataset, "split": "train", "n_photos": len(ids), "ids_sha256": digest,
            "disjoint_from": ["val", "test"]}
