"""What every result file records about how it was made."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path


def git_commit(cwd: Path | None = None) -> str:
    """Commit of the working tree (suffix ``-dirty`` when it has changes), or ``unknown``."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that decide numerical results."""
    versions = {"python": platform.python_version()}
    for package in ("whitebox", "torch", "torchvision", "kornia", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
