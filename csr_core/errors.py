"""User-facing errors: one hierarchy so the CLI and the dashboard can show a clear message and keep going."""

from __future__ import annotations


class CSRError(ValueError):
    """Base of every error a user can cause (bad file, bad value, missing model)."""


class DataError(CSRError):
    """A data file or value is malformed; the message names the file, line or value."""


class LexiconError(DataError):
    """A bilingual lexicon cannot be loaded as asked."""


class ResultsError(DataError):
    """A results file is corrupt, half-written or foreign."""


class ModelError(CSRError):
    """A model name does not resolve, or its weights cannot be loaded safely."""


class CancelledError(CSRError):
    """The user cancelled a long computation; nothing partial was written."""
