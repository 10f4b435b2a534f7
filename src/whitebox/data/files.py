"""File plumbing shared by the sources: md5 checks, copies, unpacking (all atomic) and
resumable downloads (a ``.part`` file; the final name only after the checks)."""

from __future__ import annotations

import errno
import gzip
import http.client
import os
import shutil
import socket
import tarfile
import time
import urllib.request
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.error import HTTPError, URLError

from torchvision.datasets.utils import calculate_md5
from tqdm import tqdm

from whitebox.data.errors import DataError, one_line
from whitebox.io import atomic_dir, atomic_path

MIRROR_KEY = "data_mirror"
# The fix for a bad local archive that was just removed: fetch it again.
REFETCH = "rerun to fetch it again (from data_mirror or the network)"
# Seconds a connection may stay silent before a download gives up: firewalled clusters
# drop packets instead of refusing, and urllib would otherwise wait forever.
SOCKET_TIMEOUT_S = 60
# Seconds before the n-th retry of a resumable download is n * this (tests set it to 0).
RETRY_BACKOFF_S = 2.0
CHUNK_BYTES = 1 << 20
PART_SUFFIX = ".part"


class DownloadError(DataError):
    """The network did not deliver a file; ``reason`` is the last error, one short line."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def mirror_hint(what: str) -> str:
    """The fix for a file we cannot fetch: point the config's mirror option at a copy."""
    return f"set {MIRROR_KEY}: <dir> in the config to a directory holding {what}"


def verify_md5(
    path: Path, md5: str, *, remove: bool, fix: str, shown: Path | None = None
) -> None:
    """Raise DataError if ``path``'s md5 is not ``md5``; delete the file first if ``remove``.

    ``shown`` is the name the message uses (the final name of a temporary download).
    """
    actual = calculate_md5(path)
    if actual != md5:
        raise checksum_mismatch(path, "md5", md5, actual, remove=remove, fix=fix, shown=shown)


def checksum_mismatch(path: Path, kind: str, expected: str, actual: str, *, remove: bool,
                      fix: str, shown: Path | None = None) -> DataError:
    """The one-line error for ``path`` failing its ``kind`` checksum; deletes the file first
    if ``remove`` (a download or a cached copy, never a mirror's file)."""
    if remove:
        path.unlink(missing_ok=True)
    note = "; removed" if remove else ""
    return DataError(
        f"{kind} mismatch for {shown or path} (expected {expected}, got {actual}{note}); {fix}"
    )


def unpack_folder(archive: Path, folder: str, target: Path,
                  problem: Callable[[Path], str | None]) -> None:
    """Unpack the ``folder/`` of the tar ``archive`` as ``target``: complete or not at all.

    ``problem(unpacked)`` checks the unpacked folder and returns a one-line message when it is
    incomplete or corrupt (None when it is fine); anything else in the archive is left out.
    """
    try:
        with atomic_dir(target) as tmp:
            unpack = tmp / ".unpack"
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(unpack, filter="data")
            unpacked = unpack / folder
            if not unpacked.is_dir():
                raise DataError(f"{archive} holds no {folder}/; replace it with a good copy")
            message = problem(unpacked)
            if message is not None:
                raise DataError(message)
            for item in unpacked.iterdir():  # tmp becomes target: lift the folder's contents
                item.rename(tmp / item.name)
            shutil.rmtree(unpack)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as error:
        raise DataError(
            f"cannot unpack {archive} ({one_line(error, 100)}); it is truncated or corrupt: "
            "replace it with a good copy (or delete it to fetch it again)"
        ) from None


def copy_file(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)


def gunzip(src: Path, dest: Path) -> None:
    """Decompress the gzip file ``src`` to ``dest`` atomically."""
    try:
        with atomic_path(dest) as tmp, gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, length=1 << 20)
    except (OSError, EOFError) as error:
        raise DataError(
            f"cannot decompress {src} ({one_line(error, 120)}); replace it with a good copy"
        ) from None


def download_resumable(
    urls: str | Sequence[str],
    dest: Path,
    md5: str | None,
    what: str,
    size: int | None = None,
    attempts: int = 5,
) -> None:
    """Fetch ``dest`` from the first of ``urls`` (one url, or mirrors tried in order) that
    delivers it, through ``dest.part``, resuming a partial download.

    A broken connection is retried up to ``attempts`` times per url, each time continuing
    where the ``.part`` file ends (HTTP Range); an unknown host, a refused connection or a
    client error (4xx) moves on to the next url at once. ``dest`` appears only after the
    size (if given) and md5 (if given) match; a file failing them is deleted (``.part``
    included) with a DataError. When no url delivers, a DownloadError tells the user to set
    a data mirror (``what`` describes the file); a ``.part`` left then holds the bytes
    received so far, which the next call resumes and checks before it is used.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    failures: list[tuple[str, str, bool]] = []  # url, reason, whether the server answered
    for url in [urls] if isinstance(urls, str) else urls:
        failure = _fetch_with_retries(url, part, size, attempts)
        if failure is None:
            break
        failures.append((url, *failure))
    else:
        raise _unreachable(dest, part, what, failures)
    fix = (f"the download of {dest.name} from {url} is truncated or corrupt: rerun, or "
           f"{mirror_hint(what)}")
    if size is not None and part.stat().st_size != size:
        got = part.stat().st_size
        part.unlink(missing_ok=True)
        raise DataError(f"size mismatch for {dest} (expected {size} bytes, got {got}; removed); {fix}")
    if md5 is not None:
        verify_md5(part, md5, remove=True, shown=dest, fix=fix)
    os.replace(part, dest)


def _fetch_with_retries(
    url: str, part: Path, size: int | None, attempts: int
) -> tuple[str, bool] | None:
    """Fetch ``url`` into ``part``, retrying broken connections. None once ``part`` holds the
    whole answer, else (the last error as one short line, whether the server answered)."""
    reason = "no attempt made"
    for attempt in range(max(1, attempts)):
        if attempt:
            time.sleep(RETRY_BACKOFF_S * attempt)
        try:
            _fetch_part(url, part, size)
            return None
        except HTTPError as error:
            reason = one_line(error, 100)
            if error.code == 416 and part.is_file():  # nothing left to send: whole (or wrong)
                return None  # the size and md5 checks tell which
            if 400 <= error.code < 500 and error.code not in (408, 429):
                return reason, True  # retrying will not help
        except (OSError, http.client.HTTPException, ValueError) as error:
            if isinstance(error, OSError) and error.errno == errno.ENOSPC:
                raise DataError(
                    f"no space left on the device while writing {part}; free some and rerun"
                ) from None
            reason = one_line(error, 100)
            if _host_unreachable(error):
                return reason, False  # offline or nothing listening: do not wait
    return reason, False


def _host_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says the host cannot be reached at all (no name service, no route,
    connection refused), so that retrying within seconds will not help."""
    cause = error.reason if isinstance(error, URLError) else error
    return isinstance(cause, (socket.gaierror, ConnectionRefusedError)) or getattr(
        cause, "errno", None
    ) in (errno.ENETUNREACH, errno.EHOSTUNREACH)


def _unreachable(
    dest: Path, part: Path, what: str, failures: list[tuple[str, str, bool]]
) -> DownloadError:
    """The one-line error for ``dest`` that no url delivered: each url with its last error,
    then the fix (resume the ``.part`` if it holds bytes; a mirror in any case)."""
    tried = " or ".join(f"{url} ({reason})" for url, reason, _ in failures) or "no url"
    kept = part.stat().st_size if part.is_file() else 0
    if kept:
        fix = f"rerun to resume ({part.name} keeps {kept} bytes), or {mirror_hint(what)}"
    elif failures and all(answered for _, _, answered in failures):
        fix = f"the server does not serve it: {mirror_hint(what)}"
    else:
        fix = f"no network? {mirror_hint(what)}"
    reason = failures[-1][1] if failures else "no url"
    return DownloadError(f"cannot download {dest.name} from {tried}; {fix}", reason)


def _fetch_part(url: str, part: Path, size: int | None) -> None:
    """Append the rest of ``url`` to ``part`` (start over if the server ignores Range).

    Raises ConnectionError when the stream ends before the announced length.
    """
    offset = part.stat().st_size if part.is_file() else 0
    if size is not None and offset >= size:
        return  # already whole (or too long: the size check reports it)
    headers = {"User-Agent": "whitebox"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=SOCKET_TIMEOUT_S) as response:
        if response.status == 206 and not _range_starts_at(response, offset):
            part.unlink()  # a range we did not ask for: start over on the next attempt
            raise ConnectionError(f"server resumed at the wrong offset (not {offset})")
        if response.status != 206:
            offset = 0  # the server ignores Range and sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else size
        bar = tqdm(
            total=total, initial=offset, desc=f"downloading {part.name}", unit="B",
            unit_scale=True, disable=None,
        )
        with bar, open(part, "ab" if offset else "wb") as out:
            while chunk := response.read(CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes")


def _range_starts_at(response: http.client.HTTPResponse, offset: int) -> bool:
    """Whether a 206 answer's Content-Range starts at ``offset``."""
    content_range = response.headers.get("Content-Range", "")
    return content_range.startswith(f"bytes {offset}-")
