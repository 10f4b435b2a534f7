"""Wall times of the Snakemake workflow, in a throwaway copy of the repository.

The copy comes from the integration tests' ``make_workspace``, so the developer's data/,
results/ and paper/ are never touched. Order: the smoke DAG from scratch, then a dry run
of the full config (default config.yaml, not the smoke profile), a no-op rerun of the
smoke DAG, and what the warm worker saves a command on start-up.
"""

from __future__ import annotations

import csv
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.report import Measurement
from tests.integration.workspace import make_workspace, snakemake

SMOKE = ("--profile", "profiles/smoke")
NOTHING_TO_DO = "Nothing to be done"
SMOKE_NAME = "make smoke (from scratch)"


def _timed_snakemake(workspace: Path, *args: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = snakemake(workspace, *args, timeout=1800)
    return time.perf_counter() - start, result


def _failure(result: subprocess.CompletedProcess) -> str:
    """The exit status and the last non-empty line of Snakemake's output."""
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    return f"failed (exit {result.returncode}): {lines[-1].strip()[:80] if lines else ''}"


def _slowest_jobs(workspace: Path, count: int = 3) -> dict[str, float]:
    """Wall seconds of the slowest jobs, from the rules' ``benchmark:`` files."""
    seconds = {}
    for tsv in (workspace / "logs" / "benchmarks").rglob("*.tsv"):
        with tsv.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"), None)
        if row and row.get("s"):
            seconds[str(tsv.relative_to(workspace / "logs" / "benchmarks").with_suffix(""))] = float(row["s"])
    return dict(sorted(seconds.items(), key=lambda item: -item[1])[:count])


def smoke_run(workspace: Path) -> Measurement:
    """Wall time of `make smoke` (the smoke DAG from scratch): what a new developer waits."""
    seconds, result = _timed_snakemake(workspace, *SMOKE)
    if result.returncode != 0:
        return Measurement(SMOKE_NAME, None, "s", "<", 300, note=_failure(result))
    slowest = _slowest_jobs(workspace)
    note = "slowest: " + ", ".join(f"{name} {s:.0f} s" for name, s in list(slowest.items())[:2])
    return Measurement(SMOKE_NAME, seconds, "s", "<", 300, note=note,
                       details={"slowest_jobs_s": slowest})


def full_dry_run(workspace: Path) -> Measurement:
    """Wall time of `snakemake -n all` on the full config.yaml: planning the real DAG must feel instant."""
    seconds, result = _timed_snakemake(workspace, "-n", "--cores", "1", "all")
    name = "snakemake -n all (full config)"
    if result.returncode != 0:
        return Measurement(name, None, "s", "<", 2, note=_failure(result))
    jobs = _planned_jobs(result.stdout + result.stderr)
    return Measurement(name, seconds, "s", "<", 2, note=f"{jobs} jobs planned")


def _planned_jobs(output: str) -> str:
    """The ``total`` row of a dry run's job stats, or '?' when absent."""
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "total" and parts[1].isdigit():
            return parts[1]
    return "?"


def noop_rerun(workspace: Path, smoke_ok: bool) -> Measurement:
    """Wall time of rerunning the finished smoke DAG: the fixed cost of every edit-and-rerun."""
    name = "make smoke again (nothing to do)"
    if not smoke_ok:
        return Measurement(name, None, "s", "<", 3, note="skipped: the smoke run failed")
    seconds, result = _timed_snakemake(workspace, *SMOKE)
    if result.returncode != 0:
        return Measurement(name, None, "s", "<", 3, note=_failure(result))
    if NOTHING_TO_DO not in result.stdout + result.stderr:
        return Measurement(name, None, "s", "<", 3,
                           note=f"ran jobs again ({seconds:.1f} s); expected a no-op")
    return Measurement(name, seconds, "s", "<", 3, note="nothing to be done")


def command_start(workspace: Path, rounds: int = 5) -> Measurement:
    """A command through the warm worker vs the same command in a fresh interpreter (best of
    ``rounds`` each): what each job of the DAG saves on start-up."""
    import os
    import sys

    from whitebox import worker

    env = {**os.environ, "PYTHONPATH": str(workspace / "src")}
    # A train command with an empty spec: it loads the training stack, then stops (status 1)
    # at the spec, so what is timed is start-up and imports.
    command = [sys.executable, "-m", "whitebox", "train", "--spec", "{}", "--seed", "0",
               "--data", "none.pt", "--out-dir", "none"]

    def best(environment: dict) -> float:
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            subprocess.run(command, env=environment, capture_output=True)
            times.append(time.perf_counter() - start)
        return min(times)

    fresh = best({**env, worker.DISABLE_VARIABLE: "1"})
    process = worker.start()  # exports its address in os.environ
    try:
        served = {**os.environ, "PYTHONPATH": env["PYTHONPATH"]}
        best(served)  # the first requests wait for the worker's imports
        warm = best(served)
    finally:
        worker.stop(process)
    return Measurement("command start: worker / fresh process", warm / fresh, "x", "<", 0.2,
                       note=f"{warm * 1000:.0f} ms vs {fresh * 1000:.0f} ms")


def measure() -> list[Measurement]:
    """The three workflow wall times, in a temporary workspace removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="whitebox-bench-") as tmp:
        workspace = make_workspace(Path(tmp))
        smoke = smoke_run(workspace)
        dry = full_dry_run(workspace)
        noop = noop_rerun(workspace, smoke_ok=smoke.value is not None)
        start = command_start(workspace)
    return [smoke, dry, noop, start]
