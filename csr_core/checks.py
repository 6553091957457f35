"""Argument checks every entry point shares (CLI, dashboard, API), so a bad value fails before any model loads.

A seed is stored in manifests (int64 columns) and seeds numpy and torch generators: it must be an integer in
[0, 2**32 - 1]. Lists of cut-offs, languages and probabilities must not repeat a value: a repeat would be evaluated
twice and found only after every embedding is computed (two identical rows, or a pivot that fails at the end).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import TypeVar

from csr_core.errors import CSRError

MAX_SEED = 2**32 - 1
T = TypeVar("T")


def check_seed(seed: object, what: str = "seed") -> int:
    """`seed` as an int in [0, MAX_SEED]; a bool, float, negative or huge value is refused naming it."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise CSRError(f"{what} must be an integer, got {seed!r}")
    value = int(seed)
    if not 0 <= value <= MAX_SEED:
        raise CSRError(f"{what} must be between 0 and {MAX_SEED} (2**32 - 1), got {value}")
    return value


def check_unique(values: Iterable[T], what: str) -> tuple[T, ...]:
    """`values` as a tuple; a repeated value is refused naming it (e.g. `--k 1,5,5`)."""
    out = tuple(values)
    seen: set = set()
    repeated = [v for v in out if v in seen or seen.add(v)]  # type: ignore[func-returns-value]
    if repeated:
        raise CSRError(f"{what} lists {', '.join(map(str, dict.fromkeys(repeated)))} more than once: {list(out)}")
    return out
