"""The one `Encoder` protocol every model backend implements, so evaluation never knows which backend it runs."""

from __future__ import annotations

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
    """Image and text towers projecting into one space; outputs are float32 and L2-normalised row-wise."""

    name: str
    device: str

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


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; zero rows stay zero instead of turning into NaN."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
