"""The warm worker (whitebox.worker): a command handed to it behaves as if run on its own: the
client's streams, working directory and environment, its exit status, signals sent to the
client, and it dies with the client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from whitebox import worker


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A running worker and the environment that sends ``python -m whitebox`` to it."""
    before = dict(os.environ)
    process = worker.start()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    yield process, env
    worker.stop(process)
    os.environ.clear()
    os.environ.update(before)


def whitebox(env: dict, *args: str, cwd: Path | None = None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "whitebox", *args], env=env, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            found.update(int(c) for c in children)
            todo.extend(int(c) for c in children)
    return found


def test_streams_exit_status_cwd_and_environment_are_the_clients(warm, tmp_path):
    process, env = warm
    out, err = whitebox(env, "summary", "--help").communicate(timeout=120)
    assert "usage: whitebox summary" in out
    job = whitebox(env, "train", "--spec", "{}", "--seed", "0", "--data", "x", "--out-dir", "y")
    out, err = job.communicate(timeout=60)
    assert job.returncode == 1 and err.count("\n") == 1 and "run spec: missing field(s)" in err
    # Relative paths are the client's; so is the environment (here: the data mirror's home).
    source = {"source": "synthetic", "classes": ["a", "b"], "image_size": 8, "channels": 1,
              "train_per_class": 4, "test_per_class": 2}
    job = whitebox({**env, "HOME": str(tmp_path)}, "prepare-data", "--dataset", "toy", "--source",
                   json.dumps(source), "--root", "raw", "--out", "toy.pt", "--mirror", "~/m",
                   cwd=tmp_path)
    assert job.wait(timeout=120) == 0, job.stderr.read()
    assert (tmp_path / "toy.pt").is_file()
    assert worker.address() is not None and process.poll() is None  # still serving


def long_training(tmp_path: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    from whitebox.data.prepare import prepare_dataset
    from whitebox.spec import RunSpec

    source = {"source": "synthetic", "classes": ["a", "b"], "image_size": 16, "channels": 1,
              "train_per_class": 64, "test_per_class": 8}
    data = tmp_path / "toy.pt"
    prepare_dataset("toy", source, root=tmp_path / "raw", out=data)
    spec = RunSpec(name="toy", dataset="toy", base_dataset="toy", source=source, classes=None,
                   model="mlp", model_args={"hidden": 8},
                   training={"epochs": 400, "batch_size": 16, "eval_batch_size": 64})
    out = tmp_path / "run"
    job = whitebox(env, "train", "--spec", spec.to_json(), "--seed", "0", "--data", str(data),
                   "--out-dir", str(out), "--device", "cpu", "--threads", "1")
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists():
        assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()
        time.sleep(0.1)
    return job, out


def test_sigterm_reaches_the_command_and_its_status_comes_back(warm, tmp_path):
    _, env = warm
    job, out = long_training(tmp_path, env)
    job.send_signal(signal.SIGTERM)
    _, err = job.communicate(timeout=60)
    assert job.returncode == 143
    assert "interrupted by SIGTERM" in err and "rerun to continue" in err


def test_killing_the_client_kills_the_command(warm, tmp_path):
    process, env = warm
    before = descendants(process.pid)
    job, _ = long_training(tmp_path, env)
    assert descendants(process.pid) - before  # the supervisor and the running command
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=10)
    deadline = time.monotonic() + 20
    while descendants(process.pid) - before:
        assert time.monotonic() < deadline, "the command outlived its client"
        time.sleep(0.1)


def test_a_cluster_job_runs_in_its_own_process(warm, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "12345")
    assert worker.address() is None
