"""Device choice: explicit devices, and one GPU per training job on a multi-GPU machine
(lock files; tested with simulated GPU counts, since CI has no GPU)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from whitebox.training import device as device_module
from whitebox.training.device import claim_gpu, resolve_device, visible_gpu_ids


@pytest.fixture
def held(monkeypatch):
    """The claimed lock files of this test, released at its end."""
    handles: list = []
    monkeypatch.setattr(device_module, "_HELD", handles)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    yield handles
    for handle in handles:
        handle.close()


def test_cpu_and_auto_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.parametrize("requested", ["cuda", "cuda:1"])
def test_missing_gpu_is_an_error_naming_it(monkeypatch, requested):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=f"{requested} requested but 0 CUDA GPU"):
        resolve_device(requested)


def test_unknown_device_is_an_error():
    with pytest.raises(RuntimeError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


def test_auto_takes_a_free_gpu(monkeypatch, tmp_path, held):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WHITEBOX_GPU_LOCKS", str(tmp_path))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("auto") == torch.device("cuda", 1)  # cuda:0 is held now
    assert resolve_device("cuda:1") == torch.device("cuda", 1)  # explicit: no lock


def test_claims_are_distinct_until_released(tmp_path, held):
    assert [claim_gpu(3, tmp_path) for _ in range(3)] == [0, 1, 2]
    held.pop(1).close()  # the job on GPU 1 ends
    assert claim_gpu(3, tmp_path, poll_s=0.05) == 1


def test_one_gpu_or_a_slurm_job_takes_no_lock(monkeypatch, tmp_path, held):
    assert claim_gpu(1, tmp_path) == 0
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert claim_gpu(4, tmp_path) == 0
    assert not held and not list(tmp_path.iterdir())


def test_lock_names_follow_cuda_visible_devices(monkeypatch, tmp_path, held):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aa11, GPU-bb22")
    assert visible_gpu_ids(2) == ["GPU-aa11", "GPU-bb22"]
    assert claim_gpu(2, tmp_path) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["gpu-GPU-aa11.lock"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # fewer entries than devices: indices
    assert visible_gpu_ids(2) == ["0", "1"]


CLAIM = """
import sys
from pathlib import Path
from whitebox.training.device import claim_gpu
print(claim_gpu(int(sys.argv[1]), Path(sys.argv[2]), poll_s=0.05), flush=True)
sys.stdin.readline()  # hold the GPU until the test says the job ends
"""


def _claimant(count: int, lock_dir) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CLAIM, str(count), str(lock_dir)], cwd=REPO,
                            env={"PYTHONPATH": str(REPO / "src"), "PATH": ""},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _end(job: subprocess.Popen) -> None:
    job.communicate("\n", timeout=60)


def test_concurrent_jobs_get_their_own_gpu_and_a_fourth_waits(tmp_path):
    """Three training processes on three GPUs take one each; a fourth waits until one ends and
    then takes the GPU it freed."""
    first = [_claimant(3, tmp_path) for _ in range(3)]
    claimed = [int(job.stdout.readline()) for job in first]
    assert sorted(claimed) == [0, 1, 2]
    fourth = _claimant(3, tmp_path)
    try:
        assert "all 3 GPUs are held" in fourth.stderr.readline()
        _end(first[1])
        assert int(fourth.stdout.readline()) == claimed[1]
    finally:
        for job in [first[0], first[2], fourth]:
            _end(job)
