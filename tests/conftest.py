"""Shared fixtures. Resources a test needs (TeX, ../shared/data) skip locally with a
visible reason when missing, and fail under CI=true, where they must be present."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() == "true"


def one_error_line(capsys) -> str:
    """The one non-empty line a failing command wrote to stderr (asserts there is exactly one)."""
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def png_info(path: Path) -> dict:
    """The JSON description a figure renderer embedded in its PNG (a PNG of sane size)."""
    import json

    from PIL import Image

    from whitebox.figures.grids import FIGURE_INFO_KEY

    with Image.open(path) as png:
        assert png.format == "PNG" and 100 < png.width < 6000 and 50 < png.height < 6000
        return json.loads(png.text[FIGURE_INFO_KEY])


@contextlib.contextmanager
def serving(handler) -> Iterator[str]:
    """Serve HTTP with ``handler`` on a free local port in a thread; yields the base url."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


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
