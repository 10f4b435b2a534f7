"""File plumbing shared by the sources: md5 checks, copies, downloads (all atomic)."""

from __future__ import annotations

import gzip
import shutil
import socket
from pathlib import Path
from urllib.error import URLError

from torchvision.datasets.utils import calculate_md5, download_url

from whitebox.data.errors import DataError, one_line
from whitebox.io import atomic_path

MIRROR_KEY = "data_mirror"
# Seconds a connection may stay silent before a download gives up: firewalled clusters
# drop packets instead of refusing, and urllib would otherwise wait forever.
SOCKET_TIMEOUT_S = 60


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
    if actual == md5:
        return
    if remove:
        path.unlink(missing_ok=True)
    note = "; removed" if remove else ""
    raise DataError(
        f"md5 mismatch for {shown or path} (expected {md5}, got {actual}{note}); {fix}"
    )


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


def download(urls: list[str], dest: Path, md5: str, what: str) -> None:
    """Fetch ``dest`` from the first working url, check its md5, then move it in place.

    A failed or interrupted download leaves nothing behind. ``what`` describes the file
    for the "no network" message, which tells the user to set a data mirror.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with atomic_path(dest) as tmp:
        for url in urls:
            tmp.unlink(missing_ok=True)  # download_url skips an existing file
            previous_timeout = socket.getdefaulttimeout()
            socket.setdefaulttimeout(SOCKET_TIMEOUT_S)
            try:
                download_url(url, str(dest.parent), filename=tmp.name)
            except (URLError, OSError, RuntimeError, ValueError) as error:
                errors.append(f"{url}: {one_line(error, 100)}")
                continue
            finally:
                socket.setdefaulttimeout(previous_timeout)
            break
        else:
            raise DataError(
                f"cannot download {dest.name} ({errors[-1] if errors else 'no url'}); "
                f"no network? {mirror_hint(what)}"
            )
        verify_md5(
            tmp,
            md5,
            remove=True,
            shown=dest,
            fix=f"the download of {dest.name} is truncated or corrupt: rerun, or "
            + mirror_hint(what),
        )
