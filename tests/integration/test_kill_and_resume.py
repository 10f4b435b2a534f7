"""A training job killed with SIGKILL mid-run resumes from its last epoch checkpoint and ends
with exactly the result of an uninterrupted run (CPU, same seed), also for a prototype network
whose push and last-layer refit happen between epochs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from whitebox.data import prepare_dataset
from whitebox.spec import RunSpec

pytestmark = pytest.mark.slow

SOURCE = {"source": "synthetic", "classes": ["albatross", "auklet", "bunting"], "image_size": 64,
          "channels": 3, "train_per_class": 40, "test_per_class": 10}
EPOCHS = 5


def prototype_spec() -> RunSpec:
    """Flexible parts on ResNet34: warm-up epoch 1, pushes after epochs 2 and 4."""
    return RunSpec(
        name="cub_flexparts_resnet34", dataset="cub200", base_dataset="cub200", source=SOURCE,
        classes=None, model="prototype_network",
        model_args={"backbone": "resnet34", "per_class": 2, "parts": 3, "dim": 16,
                    "warmup_epochs": 1, "push_epochs": [2, 4], "last_layer_epochs": 3},
        training={"epochs": EPOCHS, "batch_size": 30, "optimizer": {"name": "adam", "lr": 1e-4},
                  "augment": ["hflip"], "eval_batch_size": 60})


def train_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "whitebox", "train", "--spec", prototype_spec().to_json(),
            "--seed", "0", "--data", str(data), "--out-dir", str(out), "--device", "cpu",
            "--threads", "1"]


def finished_epochs(checkpoint: Path) -> int:
    """Epochs recorded in the (atomically written) checkpoint; 0 while there is none."""
    if not checkpoint.exists():
        return 0
    return len(torch.load(checkpoint, map_location="cpu", weights_only=False)["records"])


def log_rows(run: Path) -> list[dict]:
    """train_log.csv without the wall-time column (the only one allowed to differ)."""
    with open(run / "train_log.csv") as table:
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader(table)]


def test_sigkill_mid_run_resumes_to_the_uninterrupted_result(tmp_path):
    data = tmp_path / "tensors.pt"
    prepare_dataset("cub200", SOURCE, tmp_path / "raw", data)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    straight = tmp_path / "straight"
    subprocess.run(train_command(data, straight), check=True, env=env, timeout=900,
                   capture_output=True)

    killed = tmp_path / "killed"
    job = subprocess.Popen(train_command(data, killed), env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    # Kill once the checkpoint holds epoch 2 (after its push and refit), before the run ends.
    while finished_epochs(killed / "checkpoint.pt") < 2:
        assert job.poll() is None, "the job ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint of epoch 2 within 10 minutes"
        time.sleep(0.2)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL
    assert not (killed / "metrics.json").exists()
    assert 2 <= finished_epochs(killed / "checkpoint.pt") < EPOCHS

    resumed = subprocess.run(train_command(data, killed), env=env, timeout=900,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after epoch" in resumed.stderr
    assert not (killed / "checkpoint.pt").exists()  # removed once the run is complete

    assert log_rows(killed) == log_rows(straight)
    first, second = (json.loads((run / "metrics.json").read_text()) for run in (straight, killed))
    assert second["test_accuracy"] == first["test_accuracy"]
    assert second["per_class_accuracy"] == first["per_class_accuracy"]
    weights = [torch.load(run / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
               for run in (straight, killed)]
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
