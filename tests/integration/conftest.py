"""The smoke run that several integration tests read (built once per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import require
from tests.integration.workspace import make_workspace, snakemake


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A workspace in which ``snakemake --profile profiles/smoke`` ran to paper/main.pdf with the
    local executor. Tests may dry-run there or move files aside, but must restore them."""
    require(shutil.which("latexmk") is not None, "latexmk not installed")
    require(shutil.which("pdftotext") is not None, "pdftotext not installed (poppler-utils)")
    workspace = make_workspace(tmp_path_factory.mktemp("smoke"))
    # About 120 jobs, 10-12 minutes on 2 quiet cores (20 beside another training run).
    result = snakemake(workspace, "--profile", "profiles/smoke", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    return workspace
