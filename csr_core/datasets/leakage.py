"""The leakage guard: no photo a model was trained on may be in its evaluation gallery."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from csr_core.datasets.types import IMAGE_EXTENSIONS, ImageTextSet
from csr_core.errors import DataError


def canonical_image_key(image_id: str) -> str:
    """Key that identifies a photo across datasets: base name, no `#caption` suffix, no extension, lower case."""
    name = str(image_id).split("#", 1)[0].replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    if dot and ext.lower() in {e.lstrip(".") for e in IMAGE_EXTENSIONS}:
        name = stem
    return name.lower()


# External training corpora → the image collections they contain (a model "trained on coco-train2017" has seen
# train2014 and val2014 photos). Registered datasets add `<name>-train` from their DatasetInfo.image_sources.
_EXTERNAL_CORPORA = {
    "coco-train2017": {"coco-train2014", "coco-val2014"},
    "coco": {"coco-train2014", "coco-val2014"},
    "flickr30k-train": {"flickr30k"},
}


def _source_aliases() -> dict[str, set[str]]:
    from csr_core.datasets import DATASETS  # the registry imports this module

    aliases = {k: set(v) for k, v in _EXTERNAL_CORPORA.items()}
    for info in DATASETS.values():
        if "train" in info.splits:
            aliases.setdefault(f"{info.name}-train", set()).update(info.image_sources)
    return aliases


def _expand_sources(sources: Iterable[str]) -> set[str]:
    aliases = _source_aliases()
    out: set[str] = set()
    for s in sources:
        s = str(s).strip().lower()
        out.add(s)
        out |= aliases.get(s, set())
    return out


class TrainingSource(str):
    """A training-corpus name (`model_training_sources`) that carries why it stands in for photo ids.

    A model whose training photos are recorded but cannot be listed here (the data on this machine differ from its
    training data, or are absent) names the corpus instead, e.g. `TrainingSource("flickr8k-multi30k-train", note)`:
    the guard then refuses every set whose photos come from that corpus's collections, and its message ends with
    `note` (which heads, which hashes). It is a `str`, so any code that reads sources as names still works.
    """

    note: str

    def __new__(cls, name: str, note: str = "") -> "TrainingSource":
        obj = super().__new__(cls, name)
        obj.note = note
        return obj


@dataclass
class LeakageReport:
    """What an evaluation set shares with a model's training data (empty lists: nothing known to overlap)."""

    overlap: list[str]
    source_overlap: list[str]
    message: str

    @property
    def ok(self) -> bool:
        return not self.overlap and not self.source_overlap


def check_leakage(
    eval_set: ImageTextSet,
    train_image_ids: Iterable[str] | None,
    allow: bool = False,
    model_training_sources: Iterable[str] | None = None,
    model: str = "",
) -> LeakageReport:
    """Refuse (DataError) an evaluation on photos the model was trained on, unless `allow=True`.

    Two checks: photo ids shared with `train_image_ids` (compared by `canonical_image_key`, so `1000268201.jpg`
    matches `1000268201`), and whole image collections: `model_training_sources` such as `{"coco-train2014"}`
    against `eval_set.image_sources` (XTD10's photos are COCO train2014); a `TrainingSource` adds its note to the
    message. With `allow=True` the report is returned with its message for the run's notes. `model` (its name) is
    named in the message, which also gives the set's split and how many of its photos overlap.
    """
    overlap: list[str] = []
    if train_image_ids:
        train_keys = {canonical_image_key(i) for i in train_image_ids}
        overlap = [i for i in eval_set.image_ids if canonical_image_key(i) in train_keys]
    source_overlap: list[str] = []
    notes: list[str] = []
    if model_training_sources:
        model_sources = list(model_training_sources)
        model_src = _expand_sources(model_sources)
        source_overlap = sorted(s for s in eval_set.image_sources if s.lower() in model_src)
        eval_src = {s.lower() for s in eval_set.image_sources}
        notes = [str(getattr(s, "note", "")) for s in model_sources
                 if getattr(s, "note", "") and _expand_sources([s]) & eval_src]
    parts = []
    whose = f"the training images of model {model}" if model else "the model's training images"
    if overlap:
        parts.append(
            f"{len(overlap)} of {len(eval_set)} evaluation images of {eval_set.name}/{eval_set.split} are in "
            f"{whose} (the photos it was fitted or model-selected on; e.g. {', '.join(overlap[:5])})"
        )
    if source_overlap:
        parts.append(
            f"the {len(eval_set)} images of {eval_set.name}/{eval_set.split} come from {', '.join(source_overlap)}, "
            f"which {f'model {model}' if model else 'the model'} was trained on"
            + (f" ({eval_set.training_images_note})" if eval_set.training_images_note else "")
            + "".join(f" ({note})" for note in dict.fromkeys(notes))
        )
    message = "; ".join(parts)
    report = LeakageReport(overlap, source_overlap, message)
    if not report.ok and not allow:
        raise DataError(
            f"train/test leakage: {message}. Scores would be inflated; evaluate on other photos, or pass "
            "allow_leakage / allow=True (eval --allow-leakage) to run anyway (the run is then labelled)."
        )
    return report


