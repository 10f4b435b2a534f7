"""A full disk or a read-only results directory: the command ends with one line that says so and
names the path, leaves no partial result file (only a complete checkpoint), and a rerun with
room to write succeeds. Tiny tmpfs mounts stand in for the disk (root with CAP_SYS_ADMIN)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import REPO, require
from tests.integration.workspace import make_workspace, snakemake
from whitebox.data import prepare_dataset
from whitebox.spec import RunSpec

pytestmark = pytest.mark.slow

SOURCE = {"source": "synthetic", "classes": ["a", "b"], "image_size": 16, "channels": 1,
          "train_per_class": 8, "test_per_class": 4}
# An MLP of 190 hidden units: model.pt is about 200 kB, its epoch checkpoint (weights and Adam's
# two moments) about 600 kB, so a 256 KiB disk fails on the checkpoint, a 700 KiB one on model.pt.
MODEL_ARGS = {"hidden": 190}
TRAINING = {"epochs": 1, "batch_size": 8, "eval_batch_size": 8}
RESULTS = {"model.pt", "train_log.csv", "metrics.json"}
FULL = "no space left on device; free some space or write elsewhere, then rerun"
READ_ONLY = "read-only file system, the directory is not writable; make it writable or write elsewhere"


def tiny_spec() -> RunSpec:
    return RunSpec(name="tiny_mlp", dataset="tiny", base_dataset="tiny", source=SOURCE,
                          classes=None, model="mlp", model_args=MODEL_ARGS, training=TRAINING)


@pytest.fixture(scope="module")
def mountable(tmp_path_factory) -> None:
    """Skip (fail under CI) where a tmpfs cannot be mounted."""
    probe = tmp_path_factory.mktemp("mount_probe")
    mounted = shutil.which("mount") is not None and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True).returncode == 0
    if mounted:
        subprocess.run(["umount", str(probe)], check=True)
    require(mounted, "cannot mount a tmpfs (needs root with CAP_SYS_ADMIN)")


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block; always unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)]).returncode != 0:
            subprocess.run(["umount", "-l", str(path)], check=True)


def remount(path: Path, options: str) -> None:
    """Change a mounted tmpfs, e.g. ``size=4m`` (room again) or ``ro`` / ``rw``."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def whitebox(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "whitebox", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO / "src")}, timeout=600)


def train(data: Path, out: Path) -> subprocess.CompletedProcess:
    return whitebox("train", "--spec", tiny_spec().to_json(), "--seed", "0", "--data", str(data),
                    "--out-dir", str(out), "--device", "cpu", "--threads", "1")


def error_line(result: subprocess.CompletedProcess, command: str) -> str:
    """The failed command's one error line, its last on stderr (progress lines may precede it)."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert [line for line in lines if line.startswith("whitebox")] == lines[-1:], lines
    assert lines[-1].startswith(f"whitebox {command}: error: "), lines
    return lines[-1].removeprefix(f"whitebox {command}: error: ")


def files_under(root: Path) -> set[str]:
    """Every file below ``root`` (hidden temporaries included), relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def assert_complete_checkpoint(run: Path) -> None:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    assert len(state["records"]) == TRAINING["epochs"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "tensors.pt"
    prepare_dataset("tiny", SOURCE, path.parent / "raw", path)
    return path


def test_full_disk_during_the_checkpoint(mountable, data, tmp_path):
    with tmpfs(tmp_path / "disk", "256k") as disk:
        run = disk / "run"
        message = error_line(train(data, run), "train")
        assert message == f"cannot write {run}/checkpoint.pt: {FULL}"
        assert files_under(disk) == set()  # the partial temporary is gone
        remount(disk, "size=4m")
        assert train(data, run).returncode == 0
        assert files_under(run) == RESULTS


def test_full_disk_during_model_pt_keeps_only_the_checkpoint(mountable, data, tmp_path):
    with tmpfs(tmp_path / "disk", "700k") as disk:
        run = disk / "run"
        message = error_line(train(data, run), "train")
        assert message == f"cannot write {run}/model.pt: {FULL}"
        assert files_under(disk) == {"run/checkpoint.pt"}
        assert_complete_checkpoint(run)
        remount(disk, "size=4m")
        rerun = train(data, run)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "resuming after epoch 1/1" in rerun.stderr
        assert files_under(run) == RESULTS


def test_read_only_results_directory(mountable, data, tmp_path):
    with tmpfs(tmp_path / "disk", "4m") as disk:
        run = disk / "run"
        run.mkdir()
        remount(disk, "ro")
        assert error_line(train(data, run), "train") == f"cannot write {run}/checkpoint.pt: {READ_ONLY}"
        # A run directory that does not exist yet cannot be made there either.
        message = error_line(train(data, disk / "new" / "run"), "train")
        assert message == f"cannot write {disk}/new: {READ_ONLY}"
        remount(disk, "rw")
        assert files_under(disk) == set()
        assert train(data, run).returncode == 0
        assert files_under(run) == RESULTS


def test_full_disk_while_saving_a_figure(mountable, data, tmp_path):
    run = tmp_path / "run"
    assert train(data, run).returncode == 0
    with tmpfs(tmp_path / "disk", "16k") as disk:  # the gradient grid PNG is about 20 kB
        png = disk / "gradients.png"
        command = ("figure", "gradients", "--model", str(run / "model.pt"), "--data", str(data),
                   "--out", str(png))
        assert error_line(whitebox(*command), "figure") == f"cannot write {png}: {FULL}"
        assert files_under(disk) == set()
        remount(disk, "size=1m")
        assert whitebox(*command).returncode == 0
        assert files_under(disk) == {"gradients.png"}


def test_atomic_writers_raise_oserror_naming_the_target(mountable, tmp_path):
    """save_json and save_torch (where torch would raise an opaque RuntimeError) on a full disk."""
    from whitebox.io import save_json, save_torch

    with tmpfs(tmp_path / "disk", "16k") as disk:
        for save, name, payload in ((save_json, "big.json", {"x": "y" * 100_000}),
                                    (save_torch, "big.pt", {"x": torch.zeros(100_000)})):
            with pytest.raises(OSError, match="No space left on device") as raised:
                save(payload, disk / name)
            assert raised.value.filename == str(disk / name)
            assert files_under(disk) == set()


def test_snakemake_keeps_no_output_of_a_job_that_filled_the_disk(mountable, tmp_path):
    """A train job whose results/ fills up fails, no output of it remains; with room, a rerun
    resumes from the checkpoint and completes."""
    workspace = make_workspace(tmp_path)
    config = {"seeds": [0], "device": "cpu", "datasets": {"tiny": SOURCE},
              "experiments": {"tiny_mlp": {"dataset": "tiny", "model": "mlp", "model_args": MODEL_ARGS,
                                           "training": TRAINING}}}
    (workspace / "config.yaml").write_text(yaml.safe_dump(config))
    run = "results/tiny/tiny_mlp/seed0"
    log = workspace / "logs" / "train" / "tiny" / "tiny_mlp" / "seed0.log"
    with tmpfs(workspace / "results", "700k") as results:
        failed = snakemake(workspace, "--cores", "1", f"{run}/metrics.json")
        assert failed.returncode != 0
        last = log.read_text().splitlines()[-1]
        assert last == f"whitebox train: error: cannot write {run}/model.pt: {FULL}"
        assert files_under(results) == {"tiny/tiny_mlp/seed0/checkpoint.pt"}
        remount(results, "size=4m")
        rerun = snakemake(workspace, "--cores", "1", f"{run}/metrics.json")
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        assert "resuming after epoch 1/1" in log.read_text()
        assert files_under(results / "tiny" / "tiny_mlp" / "seed0") == RESULTS
