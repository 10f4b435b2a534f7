"""Download faults for MNIST and CIFAR-10 through the real prepare step (``whitebox
prepare-data``): a truncated or corrupted archive, a wrong md5, an unreachable url. Each
ends with exit status 1 and one stderr line naming the file or url and the fix, leaves no
tensors.pt, no unpacked folder and no bad archive under the data root (a ``.part`` only
where the download can resume), and a rerun with a good file succeeds.

No network: files are served by a local HTTP server, torchvision's urls and md5s are
patched to point at it and to match a tiny CIFAR-10 built here and the genuine MNIST of
../shared/data gzipped here."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torchvision

import whitebox.data.files as files_module
from tests.conftest import REPO, SHARED_DATA, ServedFiles, file_server, one_error_line, require
from whitebox.cli import main
from whitebox.data import load_prepared

pytestmark = pytest.mark.slow

CIFAR = torchvision.datasets.CIFAR10
MNIST = torchvision.datasets.MNIST
TORCHVISION = json.dumps({"source": "torchvision"})
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]
CIFAR_BATCHES = {"data_batch_1": 6, "data_batch_2": 4, "test_batch": 5}  # images per batch


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "RETRY_BACKOFF_S", 0)


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def closed_url() -> str:
    """Base url of a local port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def prepare(dataset: str, root: Path, mirror: Path | None = None) -> int:
    """``whitebox prepare-data`` in-process, laid out as the DAG's rule does (tensors in root)."""
    argv = ["prepare-data", "--dataset", dataset, "--source", TORCHVISION, "--root", str(root),
            "--out", str(root / "tensors.pt")]
    return main(argv + (["--mirror", str(mirror)] if mirror is not None else []))


def left_under(root: Path) -> list[str]:
    """Every file and folder under ``root`` (hidden temporaries included), relative."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


# ---------------------------------------------------------------- a local file server


@pytest.fixture
def server() -> Iterator[tuple[str, ServedFiles]]:
    """The local file server (tests/conftest.py); the tests here serve ``files`` only, other
    paths answer 404."""
    with file_server() as url_and_served:
        yield url_and_served


# ---------------------------------------------------------------- a tiny CIFAR-10


def tiny_cifar_archive() -> tuple[bytes, dict[str, str]]:
    """A well-formed cifar-10-python.tar.gz with a few images per batch, in CIFAR's own
    pickle format, and the md5 of each batch file in it."""
    rng = np.random.default_rng(0)
    contents = {}
    for number, (name, count) in enumerate(CIFAR_BATCHES.items(), 1):
        batch = {"batch_label": f"batch {number}", "labels": [i % 10 for i in range(count)],
                 "data": rng.integers(0, 256, (count, 3072), np.uint8),
                 "filenames": [f"image_{number}_{i}.png" for i in range(count)]}
        contents[name] = pickle.dumps(batch, protocol=2)
    contents["batches.meta"] = pickle.dumps(
        {"label_names": CIFAR_CLASSES, "num_cases_per_batch": 6, "num_vis": 3072}, protocol=2)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(f"{CIFAR.base_folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue(), {name: _md5(data) for name, data in contents.items()}


@pytest.fixture
def cifar(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """The tiny archive's bytes; torchvision's file lists and md5s patched to match it, its
    url to a closed port (tests serve it where they need it)."""
    archive, md5s = tiny_cifar_archive()
    monkeypatch.setattr(CIFAR, "train_list", [["data_batch_1", md5s["data_batch_1"]],
                                              ["data_batch_2", md5s["data_batch_2"]]])
    monkeypatch.setattr(CIFAR, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(CIFAR, "meta", {**CIFAR.meta, "md5": md5s["batches.meta"]})
    monkeypatch.setattr(CIFAR, "tgz_md5", _md5(archive))
    monkeypatch.setattr(CIFAR, "url", f"{closed_url()}/{CIFAR.filename}")
    return archive


def serve_cifar(server: tuple[str, ServedFiles], data: bytes, monkeypatch: pytest.MonkeyPatch) -> str:
    """Serve ``data`` as the CIFAR-10 archive; returns its url."""
    url, served = server
    served.files[f"/{CIFAR.filename}"] = data
    monkeypatch.setattr(CIFAR, "url", f"{url}/{CIFAR.filename}")
    return CIFAR.url


def check_cifar_prepared(root: Path) -> None:
    data = load_prepared(root / "tensors.pt")
    assert data.classes == CIFAR_CLASSES
    assert data.train.images.shape == (10, 3, 32, 32)
    assert data.test.images.shape == (5, 3, 32, 32)
    assert data.train.labels.tolist() == list(range(6)) + list(range(4))
    assert (root / CIFAR.base_folder / "test_batch").is_file()


def truncated(archive: bytes) -> bytes:
    return archive[: len(archive) // 2]


def corrupted(archive: bytes) -> bytes:
    """The same size, some bytes in the middle flipped."""
    middle = len(archive) // 2
    return archive[:middle] + bytes(b ^ 0xFF for b in archive[middle:middle + 16]) + archive[middle + 16:]


# ---------------------------------------------------------------- CIFAR-10


@pytest.mark.parametrize("fault", [truncated, corrupted], ids=["truncated", "corrupted"])
def test_cifar_bad_archive_served(tmp_path, cifar, server, monkeypatch, capsys, fault) -> None:
    """The server sends a short or altered archive (its own length announced): md5 mismatch,
    the download is deleted; a rerun once the server sends the good one succeeds."""
    url = serve_cifar(server, fault(cifar), monkeypatch)
    root = tmp_path / "data" / "cifar10"
    assert prepare("cifar10", root) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"whitebox prepare-data: error: md5 mismatch for {root / CIFAR.filename}")
    assert url in line and "truncated or corrupt: rerun" in line and "data_mirror" in line
    assert left_under(root) == []

    serve_cifar(server, cifar, monkeypatch)
    assert prepare("cifar10", root) == 0
    check_cifar_prepared(root)


def test_cifar_connection_dropped_keeps_part_and_resumes(tmp_path, cifar, server, monkeypatch,
                                                         capsys) -> None:
    """Every answer stops halfway (the full length announced): after the retries the bytes
    received stay in a .part (and nothing else); the rerun fetches only the rest."""
    url, served = server
    serve_cifar(server, cifar, monkeypatch)
    half = len(cifar) // 2
    served.cut_at = half
    root = tmp_path / "data" / "cifar10"
    assert prepare("cifar10", root) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"whitebox prepare-data: error: cannot download {CIFAR.filename} "
                           f"from {url}/{CIFAR.filename} (connection closed after {half} of")
    assert f"rerun to resume ({CIFAR.filename}.part keeps {half} bytes)" in line
    assert left_under(root) == [f"{CIFAR.filename}.part"]
    assert len(served.requests) == 5  # retried, each time asking for the rest

    served.cut_at, served.requests = None, []
    assert prepare("cifar10", root) == 0
    assert served.requests == [(f"/{CIFAR.filename}", f"bytes={half}-")]
    check_cifar_prepared(root)


@pytest.mark.parametrize("fault", [truncated, corrupted], ids=["truncated", "corrupted"])
def test_cifar_bad_archive_in_mirror(tmp_path, cifar, capsys, fault) -> None:
    """A bad archive in data_mirror is named and kept (it is the user's); nothing is
    unpacked; a rerun after replacing it with a good copy succeeds."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / CIFAR.filename).write_bytes(fault(cifar))
    root = tmp_path / "data" / "cifar10"
    assert prepare("cifar10", root, mirror) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"whitebox prepare-data: error: md5 mismatch for {mirror / CIFAR.filename}")
    assert line.endswith(f"replace it with a good copy of {CIFAR.filename}")
    assert left_under(root) == []
    assert (mirror / CIFAR.filename).read_bytes() == fault(cifar)

    (mirror / CIFAR.filename).write_bytes(cifar)
    assert prepare("cifar10", root, mirror) == 0
    check_cifar_prepared(root)
    assert left_under(mirror) == [CIFAR.filename]  # the mirror is read, never written


@pytest.mark.parametrize("fault", [truncated, corrupted], ids=["truncated", "corrupted"])
def test_cifar_bad_archive_in_root(tmp_path, cifar, server, monkeypatch, capsys, fault) -> None:
    """A bad archive already in the data root (an old download, a copy by hand) is removed;
    the rerun downloads a good one."""
    root = tmp_path / "data" / "cifar10"
    root.mkdir(parents=True)
    (root / CIFAR.filename).write_bytes(fault(cifar))
    assert prepare("cifar10", root) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"whitebox prepare-data: error: md5 mismatch for {root / CIFAR.filename}")
    assert "removed" in line and line.endswith("rerun to fetch it again (from data_mirror or the network)")
    assert left_under(root) == []

    serve_cifar(server, cifar, monkeypatch)
    assert prepare("cifar10", root) == 0
    check_cifar_prepared(root)


@pytest.mark.parametrize("where", ["closed port", "404"])
def test_cifar_unreachable_url(tmp_path, cifar, server, monkeypatch, capsys, where) -> None:
    """Nothing listens, or the server has no such file: one line naming the url, the error
    and the mirror fix, at once (no retries) and with nothing left; then a good url works."""
    url, served = server
    bad_url = CIFAR.url if where == "closed port" else f"{url}/moved/{CIFAR.filename}"
    monkeypatch.setattr(CIFAR, "url", bad_url)
    root = tmp_path / "data" / "cifar10"
    assert prepare("cifar10", root) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"whitebox prepare-data: error: cannot download {CIFAR.filename} "
                           f"from {bad_url} (")
    if where == "404":
        assert "HTTP Error 404" in line and "the server does not serve it" in line
        assert served.requests == [(f"/moved/{CIFAR.filename}", None)]  # not retried
    else:
        assert "Connection refused" in line and "no network?" in line
    assert f"set data_mirror: <dir> in the config to a directory holding {CIFAR.filename}" in line
    assert left_under(root) == []

    serve_cifar(server, cifar, monkeypatch)
    assert prepare("cifar10", root) == 0
    check_cifar_prepared(root)


def test_cifar_bad_mirror_archive_through_the_real_command(tmp_path) -> None:
    """``python -m whitebox`` with torchvision's real md5: a truncated archive in the mirror
    ends in exit status 1 and one stderr line, nothing written."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / CIFAR.filename).write_bytes(b"\x1f\x8b" + bytes(1000))
    root = tmp_path / "data" / "cifar10"
    result = run_command("cifar10", root, mirror)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines == [f"whitebox prepare-data: error: md5 mismatch for {mirror / CIFAR.filename} "
                     f"(expected {CIFAR.tgz_md5}, got {_md5((mirror / CIFAR.filename).read_bytes())}); "
                     f"replace it with a good copy of {CIFAR.filename}"]
    assert left_under(root) == []


# ---------------------------------------------------------------- MNIST


MNIST_RAW = SHARED_DATA / "MNIST" / "raw"


@pytest.fixture(scope="module")
def mnist_gz() -> dict[str, bytes]:
    """The genuine MNIST files of ../shared/data gzipped here: {.gz name: bytes}."""
    require(MNIST_RAW.is_dir(), f"MNIST not found at {MNIST_RAW}")
    return {gz: gzip.compress((MNIST_RAW / Path(gz).stem).read_bytes(), compresslevel=1, mtime=0)
            for gz, _ in MNIST.resources}


@pytest.fixture
def mnist(mnist_gz: dict[str, bytes], monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The .gz files; torchvision's md5s patched to match them, its mirrors to a closed port."""
    monkeypatch.setattr(MNIST, "resources", [(gz, _md5(data)) for gz, data in mnist_gz.items()])
    monkeypatch.setattr(MNIST, "mirrors", [f"{closed_url()}/"])
    return mnist_gz


def check_mnist_prepared(root: Path) -> None:
    data = load_prepared(root / "tensors.pt")
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert data.train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits


def test_mnist_wrong_md5_from_a_mirror_url(tmp_path, mnist, server, monkeypatch, capsys) -> None:
    """The first mirror url is unreachable, the second serves a test-labels .gz whose
    content differs: md5 mismatch naming file and url, that file deleted, the files fetched
    before it kept only as verified good copies; the rerun fetches just the missing one."""
    url, served = server
    served.files = {f"/mnist/{gz}": data for gz, data in mnist.items()}
    bad_gz = "t10k-labels-idx1-ubyte.gz"
    labels = (MNIST_RAW / "t10k-labels-idx1-ubyte").read_bytes()
    served.files[f"/mnist/{bad_gz}"] = gzip.compress(labels[:8] + bytes(reversed(labels[8:])))
    monkeypatch.setattr(MNIST, "mirrors", [*MNIST.mirrors, f"{url}/mnist/"])
    root = tmp_path / "data" / "mnist"
    assert prepare("mnist", root) == 1
    line = one_error_line(capsys)
    raw = root / "MNIST" / "raw"
    assert line.startswith(f"whitebox prepare-data: error: md5 mismatch for {raw / bad_gz}")
    assert f"the download of {bad_gz} from {url}/mnist/{bad_gz} is truncated or corrupt: rerun" in line
    assert "data_mirror" in line
    left = left_under(root)
    assert not any(name.startswith("MNIST/raw/t10k-labels") for name in left), left
    assert "tensors.pt" not in left
    for name in left:  # whatever stays is a verified download or its unpacked content
        path = root / name
        if name.endswith(".gz"):
            assert path.read_bytes() == mnist[path.name]
        elif path.is_file():
            assert path.read_bytes() == (MNIST_RAW / path.name).read_bytes()

    served.files[f"/mnist/{bad_gz}"] = mnist[bad_gz]
    served.requests = []
    assert prepare("mnist", root) == 0
    assert served.requests == [(f"/mnist/{bad_gz}", None)]
    check_mnist_prepared(root)


def test_mnist_unreachable_mirror_urls(tmp_path, mnist, server, monkeypatch, capsys) -> None:
    """Every mirror url fails (closed port, 404): one line listing each url with its error
    and the mirror fix, nothing left; the rerun with a serving mirror url succeeds."""
    url, served = server
    closed = MNIST.mirrors[0]
    monkeypatch.setattr(MNIST, "mirrors", [closed, f"{url}/mnist/"])
    root = tmp_path / "data" / "mnist"
    assert prepare("mnist", root) == 1
    line = one_error_line(capsys)
    first = "train-images-idx3-ubyte.gz"
    assert line.startswith(f"whitebox prepare-data: error: cannot download {first} from {closed}{first} (")
    assert f"Connection refused>) or {url}/mnist/{first} (HTTP Error 404: Not Found); no network?" in line
    assert "set data_mirror: <dir> in the config to a directory holding MNIST/raw/train-images" in line
    assert [p for p in left_under(root) if (root / p).is_file()] == []

    served.files = {f"/mnist/{gz}": data for gz, data in mnist.items()}
    assert prepare("mnist", root) == 0
    check_mnist_prepared(root)


def run_command(dataset: str, root: Path, mirror: Path) -> subprocess.CompletedProcess:
    """``python -m whitebox prepare-data`` in a subprocess (torchvision's real urls and md5s)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    command = [sys.executable, "-m", "whitebox", "prepare-data", "--dataset", dataset, "--source",
               TORCHVISION, "--root", str(root), "--out", str(root / "tensors.pt"), "--mirror",
               str(mirror)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def test_mnist_wrong_gz_in_mirror_through_the_real_command(tmp_path) -> None:
    """``python -m whitebox`` with torchvision's real md5s: a train-images .gz in the mirror
    whose content differs fails in one line and is kept; a mirror with the genuine files works."""
    require(MNIST_RAW.is_dir(), f"MNIST not found at {MNIST_RAW}")
    mirror = tmp_path / "mirror"
    (mirror / "MNIST" / "raw").mkdir(parents=True)
    bad = mirror / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    bad.write_bytes(gzip.compress(bytes(1000)))
    root = tmp_path / "data" / "mnist"
    result = run_command("mnist", root, mirror)
    assert result.returncode == 1
    expected = dict(MNIST.resources)["train-images-idx3-ubyte.gz"]
    assert result.stderr.splitlines() == [
        f"whitebox prepare-data: error: md5 mismatch for {bad} (expected {expected}, got "
        f"{_md5(bad.read_bytes())}); replace it with a good copy of train-images-idx3-ubyte.gz"]
    assert [p for p in left_under(root) if (root / p).is_file()] == []

    result = run_command("mnist", root, SHARED_DATA)
    assert result.returncode == 0, result.stderr[-2000:]
    check_mnist_prepared(root)
