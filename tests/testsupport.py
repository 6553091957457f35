"""Helpers shared by test modules (importable as `testsupport`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import os

import pytest


def skip_or_fail(reason: str) -> None:
    """Skip where a test's environment is missing on a developer's machine; under CI (CI=true) that is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the test environment must provide it)")
    pytest.skip(reason)
