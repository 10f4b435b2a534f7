"""A throwaway copy of the repository in which Snakemake runs, so tests never touch
the developer's data/, results/ or paper/main.pdf."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.standin import COPIED, GENERATED
from tests.conftest import REPO

IGNORED = shutil.ignore_patterns(*GENERATED)


def make_workspace(root: Path) -> Path:
    """Copy what the workflow needs into ``root`` and return it."""
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=IGNORED)
        else:
            shutil.copy2(source, root / name)
    return root


def snakemake(workspace: Path, *args: str, timeout: int = 600,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run Snakemake of this interpreter's environment inside ``workspace`` (in ``env``, by
    default this process's environment)."""
    env = dict(env or os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workspace, env=env,
                          capture_output=True, text=True, timeout=timeout)
