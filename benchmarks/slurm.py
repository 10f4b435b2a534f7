"""Scheduling overhead of the SLURM profile: the smoke DAG through a private single-node SLURM
cluster (tests/integration/slurm_cluster.py, needs root and Debian's slurmctld, slurmd, munge)
against the local executor, both from scratch in throwaway workspaces of this benchmark run.

The ratio is SLURM wall time over local wall time; the note gives the extra seconds per
cluster job (submission, polling, the job step's Snakemake start). ``--quick`` times the
training jobs of two small experiments instead of the whole DAG.
"""

from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from benchmarks.report import Measurement
from tests.integration.slurm_cluster import (
    ClusterUnavailable,
    local_slurm,
    missing_requirements,
    slurm_smoke_args,
)
from tests.integration.workspace import make_workspace, snakemake

NAME = "smoke DAG via local SLURM / local executor"
LIMIT = 1.5
QUICK_TARGETS = ("results/cifar2/conj_disj/seed0/metrics.json", "results/cifar2/conj_disj/seed1/metrics.json",
                 "results/mnist/mlp_mnist/seed0/metrics.json", "results/mnist/mlp_mnist/seed1/metrics.json")


def _timed(workspace: Path, args: list[str], env: dict | None = None) -> tuple[float, str, int]:
    start = time.perf_counter()
    result = snakemake(workspace, *args, timeout=3600, env=env)
    return time.perf_counter() - start, result.stdout + result.stderr, result.returncode


def measure(quick: bool = False, local_smoke_s: float | None = None) -> list[Measurement]:
    """Both executors on the same targets; ``local_smoke_s`` reuses a from-scratch local smoke
    run timed earlier in this benchmark run (the workflow part) instead of a second one."""
    name = NAME + (" (4 training jobs)" if quick else "")
    reason = missing_requirements()
    if reason:
        return [Measurement(name, None, "x", "<", LIMIT, note=f"skipped: {reason}")]
    targets = list(QUICK_TARGETS) if quick else []
    with tempfile.TemporaryDirectory(prefix="whitebox-bench-slurm-") as tmp:
        root = Path(tmp)
        for folder in ("local", "slurm"):
            (root / folder).mkdir()
        if local_smoke_s is None or quick:
            local_s, output, status = _timed(make_workspace(root / "local"),
                                             [*targets, "--profile", "profiles/smoke"])
            if status != 0:
                return [Measurement(name, None, "x", "<", LIMIT, note=f"local run failed: {output[-200:]}")]
        else:
            local_s = local_smoke_s
        try:
            with local_slurm(root / "cluster") as env:
                slurm_s, output, status = _timed(make_workspace(root / "slurm"),
                                                 [*targets, *slurm_smoke_args()], env=env)
        except ClusterUnavailable as error:
            return [Measurement(name, None, "x", "<", LIMIT, note=f"no cluster: {str(error)[:120]}")]
    if status != 0:
        return [Measurement(name, None, "x", "<", LIMIT, note=f"SLURM run failed: {output[-200:]}")]
    jobs = len(re.findall(r"has been submitted with SLURM jobid", output))
    per_job = (slurm_s - local_s) / max(jobs, 1)
    return [Measurement(name, slurm_s / local_s, "x", "<", LIMIT,
                        note=f"{slurm_s:.0f} s vs {local_s:.0f} s; {jobs} cluster jobs, "
                             f"{per_job:+.1f} s each",
                        details={"slurm_s": slurm_s, "local_s": local_s, "cluster_jobs": jobs})]
