"""Shared fixtures. Resources a test needs (TeX, ../shared/data) skip locally with a
visible reason when missing, and fail under CI=true, where they must be present."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
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


@dataclass
class ServedFiles:
    """What ``file_server`` sends and the requests it saw; change it while it serves.

    ``files`` by url path (the query string is ignored), ``default`` for any other path
    (None: 404). ``cut_at``: every answer stops at this byte of the file, ``drop_first_after``:
    the first answer stops after this many bytes of its body; both announce the full length
    and close the connection. ``requests``: (path as sent, Range header) of each request."""

    files: dict[str, bytes] = field(default_factory=dict)
    default: bytes | None = None
    honour_range: bool = True
    cut_at: int | None = None
    drop_first_after: int | None = None
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    @property
    def ranges(self) -> list[str | None]:
        """The Range header of each request (None where there was none)."""
        return [header for _, header in self.requests]


@contextlib.contextmanager
def file_server() -> Iterator[tuple[str, ServedFiles]]:
    """A local HTTP file server with Range support (``serving``); yields its base url and
    the ``ServedFiles`` that steers it."""
    served = ServedFiles()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            header = self.headers.get("Range")
            served.requests.append((self.path, header))
            data = served.files.get(self.path.split("?", 1)[0], served.default)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if header and served.honour_range:
                start = int(header.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            end = len(data)
            if served.cut_at is not None:
                end = min(end, max(start, served.cut_at))
            if served.drop_first_after is not None and len(served.requests) == 1:
                end = min(end, start + served.drop_first_after)
                self.close_connection = True
            self.wfile.write(data[start:end])
            if end < len(data):
                self.close_connection = True

    with serving(Handler) as url:
        yield url, served


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
