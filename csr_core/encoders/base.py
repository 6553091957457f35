"""The one `Encoder` protocol every model backend implements, so evaluation never knows which backend it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, Union, runtime_checkable

import numpy as np

# An image item is a file path (str or Path) or an already-opened PIL image.
if TYPE_CHECKING:
    import PIL.Image

ImageItem = Union[str, Path, "PIL.Image.Image"]
# progress(done, total): called after each batch; may raise CancelledError to stop between batches.
ProgressCallback = Callable[[int, int], None]


@runtime_checkable
class Encoder(Protocol):
    """Image and text towers projecting into one space; outputs are float32 and L2-normalised row-wise.

    The optional traits have defaults here, so an encoder that subclasses `Encoder` inherits them; read them from any
    encoder, duck-typed ones included, with `traits(encoder)`.
    """

    name: str
    device: str
    lang_invariant: bool = False  # the text vector ignores `lang`: cache entries are shared across languages
    training_image_ids: Sequence[str] | None = None  # photos it was trained on: the leakage guard refuses them
    training_sources: Sequence[str] = ()  # image collections it was trained on, e.g. ("coco-train2014",)

    @property
    def fingerprint(self) -> str:
        """Stable hash of weights + preprocessing: the embedding-cache key prefix."""
        ...

    @property
    def dim(self) -> int:
        ...

    def encode_images(
        self, items: Sequence[ImageItem], batch_size: int = 32, progress: ProgressCallback | None = None
    ) -> np.ndarray:
        ...

    def encode_texts(
        self,
        texts: Sequence[str],
        lang: str | None = None,
        batch_size: int = 64,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        ...


@dataclass(frozen=True)
class EncoderTraits:
    """The optional `Encoder` attributes, with the protocol's defaults: one place reads them from any encoder."""

    lang_invariant: bool = False
    training_image_ids: tuple[str, ...] = ()
    training_sources: tuple[str, ...] = ()

    @property
    def known_training_data(self) -> bool:
        return bool(self.training_image_ids or self.training_sources)


def traits(encoder: object) -> EncoderTraits:
    """An encoder's optional traits (defaults where a duck-typed encoder does not declare them)."""
    return EncoderTraits(
        lang_invariant=bool(getattr(encoder, "lang_invariant", False)),
        training_image_ids=tuple(getattr(encoder, "training_image_ids", None) or ()),
        training_sources=tuple(getattr(encoder, "training_sources", None) or ()),
    )


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; zero rows stay zero instead of turning into NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
