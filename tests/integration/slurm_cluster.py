"""A private single-node SLURM cluster on this machine, for the profile's integration test
and the scheduling-overhead benchmark.

Debian's ``munge``, ``slurmctld`` and ``slurmd`` run as root from a scratch directory: their
own munge key and socket, a ``slurm.conf`` on free ports (``SLURM_CONF`` points the clients
at it), no accounting (so Snakemake's plugin checks job states with ``squeue``). Nothing in
/etc is read or changed, and a system cluster on the same machine is left alone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from tests.conftest import REPO

DAEMONS = ("munged", "slurmctld", "slurmd")
# What the SLURM profile needs on a machine without sacct (accounting_storage/none); on this
# one-node cluster job states are checked every 2 s, not 10 (45 short jobs in two lanes).
STATUS_OPTIONS = ("--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
                  "--seconds-between-status-checks", "2")


class ClusterUnavailable(RuntimeError):
    """SLURM could not be started here (not root, packages missing, daemons failed)."""


def missing_requirements() -> str | None:
    """Why a private cluster cannot start on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    absent = [name for name in (*DAEMONS, "sbatch", "squeue", "sinfo") if shutil.which(name) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install slurmctld slurmd munge)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    """Physical memory in MB, less 2 GB for the system (RealMemory of the node)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024 - 2048
    raise ClusterUnavailable("cannot read MemTotal from /proc/meminfo")


def _slurm_conf(root: Path, node: str, munge_socket: Path) -> str:
    settings = {
        "ClusterName": "whitebox-test",
        "SlurmctldHost": f"{node}(127.0.0.1)",
        "SlurmctldPort": _free_port(),
        "SlurmdPort": _free_port(),
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        "AuthInfo": f"socket={munge_socket}",
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "ReturnToService": 2,
        "SchedulerType": "sched/backfill",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_Core_Memory",
        "JobAcctGatherType": "jobacct_gather/none",
        "AccountingStorageType": "accounting_storage/none",
        "MpiDefault": "none",
        "KillWait": 10,
        "MinJobAge": 30,
        "SlurmctldPidFile": root / "slurmctld.pid",
        "SlurmdPidFile": root / "slurmd.pid",
        "StateSaveLocation": root / "state",
        "SlurmdSpoolDir": root / "spool",
        "SlurmctldLogFile": root / "slurmctld.log",
        "SlurmdLogFile": root / "slurmd.log",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(f"NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} "
                 f"RealMemory={_memory_mb()} State=UNKNOWN")
    lines.append(f"PartitionName=main Nodes={node} Default=YES MaxTime=INFINITE State=UP")
    return "\n".join(lines) + "\n"


def _wait_until(ready, what: str, logs: list[Path], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            tails = " | ".join(f"{log.name}: {log.read_text()[-400:]!r}" for log in logs if log.exists())
            raise ClusterUnavailable(f"{what} not ready within {timeout:.0f} s; {tails}")
        time.sleep(0.3)


def _node_idle(env: dict) -> bool:
    result = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
    return result.returncode == 0 and result.stdout.strip() == "idle"


def _stop(pid_file: Path) -> None:
    """SIGTERM the daemon named by ``pid_file`` and wait for it to go (SIGKILL after 15 s)."""
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError):
        pid = int(pid_file.read_text().split()[0])
        for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.1)


@contextlib.contextmanager
def local_slurm(root: Path) -> Iterator[dict[str, str]]:
    """Start munged, slurmctld and slurmd under ``root``; yield the environment that points
    SLURM's clients (and Snakemake's plugin) at them; stop all three afterwards."""
    reason = missing_requirements()
    if reason:
        raise ClusterUnavailable(reason)
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    for folder in ("state", "spool"):
        (root / folder).mkdir(exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = root / "munge.socket"
    node = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, node, munge_socket))
    # Snakemake's jobstep plugin drops every SLURM_* variable (SLURM_CONF too) before it calls
    # srun inside a job, so srun would read /etc/slurm: a wrapper first on PATH sets it again.
    shims = root / "bin"
    shims.mkdir(exist_ok=True)
    srun = shims / "srun"
    srun.write_text(f'#!/bin/sh\nSLURM_CONF={conf} exec {shutil.which("srun")} "$@"\n')
    srun.chmod(0o755)
    env = {**os.environ, "SLURM_CONF": str(conf), "PATH": f"{shims}{os.pathsep}{os.environ['PATH']}"}
    pid_files = [root / "munged.pid", root / "slurmctld.pid", root / "slurmd.pid"]
    logs = [root / "munged.log", root / "slurmctld.log", root / "slurmd.log"]
    try:
        subprocess.run(["munged", "--force", f"--socket={munge_socket}", f"--key-file={key}",
                        f"--pid-file={pid_files[0]}", f"--log-file={logs[0]}",
                        f"--seed-file={root / 'munged.seed'}"], check=True, env=env,
                       capture_output=True, text=True, timeout=30)
        _wait_until(munge_socket.exists, "munged", logs)
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env, capture_output=True,
                       timeout=30)
        subprocess.run(["slurmd", "-f", str(conf), "-N", node], check=True, env=env,
                       capture_output=True, timeout=30)
        _wait_until(lambda: _node_idle(env), "the SLURM node", logs)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        for pid_file in reversed(pid_files):
            _stop(pid_file)
        detail = getattr(error, "stderr", "") or ""
        raise ClusterUnavailable(f"{error}: {str(detail)[-400:]}") from error
    except ClusterUnavailable:
        for pid_file in reversed(pid_files):
            _stop(pid_file)
        raise
    try:
        yield env
    finally:
        subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True)
        for pid_file in reversed(pid_files):
            _stop(pid_file)


def slurm_smoke_args(*configfiles: str) -> list[str]:
    """Snakemake arguments of the smoke DAG through profiles/slurm on this test cluster: the
    smoke config (then ``configfiles``), job states from squeue, no account, no GPUs asked for
    (the node has none) and at most the node's CPUs per job. Targets go before these (options
    that take lists would swallow them)."""
    cpus = os.cpu_count() or 1
    # Training with the smoke profile's threads: the results are compared with a local run's.
    smoke = yaml.safe_load((REPO / "profiles" / "smoke" / "config.yaml").read_text())
    return ["--profile", "profiles/slurm", "--configfile", "config.yaml", "profiles/smoke/smoke.yaml",
            *configfiles, *STATUS_OPTIONS, "--slurm-no-account", "--set-resources", "train:gpu=0",
            "--set-threads", f"train={smoke['set-threads']['train']}", f"evaluate={min(2, cpus)}"]
