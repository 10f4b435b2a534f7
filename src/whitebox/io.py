"""Atomic result files: write under a hidden temporary name beside the target, then rename.

An interrupted job therefore never leaves a file that looks complete. Temporary names are
made by hand (not mkstemp, whose 0600 mode would stick) so results get the user's umask.
A failed write (disk full, read-only directory) removes the temporary and raises OSError
naming the target, which the CLI reports in one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _temporary_name(dest: Path) -> Path:
    return dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def _name_target(error: OSError, dest: Path, tmp: Path) -> None:
    """Make ``error`` name ``dest``: a failed write() names no file, a failed touch the temporary."""
    if error.filename is None or str(error.filename) == str(tmp):
        error.filename = str(dest)


@contextlib.contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it to ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(dest)
    try:
        tmp.touch(exist_ok=False)
        yield tmp
        os.replace(tmp, dest)
    except OSError as error:
        _name_target(error, dest, tmp)
        raise
    finally:
        with contextlib.suppress(OSError):  # e.g. on a read-only file system
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(dest: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; it replaces ``dest`` only on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(dest)
    try:
        tmp.mkdir()
        yield tmp
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except OSError as error:
        _name_target(error, dest, tmp)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` and rename the result to ``path``; no partial file survives."""
    with atomic_path(Path(path)) as tmp:
        write(tmp)


def save_json(obj: Any, path: Path) -> None:
    """Pretty JSON, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2) + "\n"))


def plain_state_dict(payload: Any) -> Any:
    """A published weights payload as a plain state dict: the one under ``state_dict`` if the
    file is a checkpoint, keys without DataParallel's ``module.`` prefix."""
    if isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    if not isinstance(payload, dict):
        return payload
    return {(key.removeprefix("module.") if isinstance(key, str) else key): value
            for key, value in payload.items()}


class _WriteErrors:
    """A binary file for ``torch.save`` that keeps the OSError of a failed write: torch turns
    it into a RuntimeError ("unexpected pos ...") that no longer says the disk is full."""

    def __init__(self, file: BinaryIO) -> None:
        self.file, self.error = file, None

    def write(self, data: bytes) -> int:
        try:
            return self.file.write(data)
        except OSError as error:
            self.error = error
            raise

    def flush(self) -> None:
        self.file.flush()


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically (torch is imported only when needed); a full disk raises
    OSError, not torch's RuntimeError."""
    import torch

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            sink = _WriteErrors(file)
            try:
                torch.save(obj, sink)
            except RuntimeError:
                if sink.error is not None:
                    raise sink.error from None
                raise

    atomic_write(path, write)
