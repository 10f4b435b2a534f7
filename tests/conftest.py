"""Shared fixtures. Resources a test needs (TeX, ../shared/data) skip locally with a
visible reason when missing, and fail under CI=true, where they must be present."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


def require(condition: bool, reason: str) -> None:
    """Skip with ``reason`` unless running in CI, where a missing resource is a failure."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real MNIST, CIFAR-10 JPEG stand-in)."""
    require(SHARED_DATA.is_dir(), f"offline data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def latexmk() -> str:
    """Path of latexmk (TeX is installed by .ci/run)."""
    path = shutil.which("latexmk")
    require(path is not None, "latexmk not installed (apt-get install latexmk texlive-latex-base)")
    return path
