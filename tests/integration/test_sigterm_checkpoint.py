"""A training job sent SIGTERM mid-epoch (SLURM's time limit, preemption) writes a mid-epoch
checkpoint, exits with status 143 and one line saying so, and a rerun continues from that step
to exactly the result of an uninterrupted run (CPU, same seed): for a Gumbel network, whose
layers draw from torch's global RNG, and for an INH model, whose slots grow during the epoch.

The stopped job runs ``sigterm_at_step.py`` (``python -m whitebox`` that sends itself SIGTERM
right after a given optimiser step), so the signal lands at a known step of epoch 2 however fast
the machine is; timing it from outside (poll for the epoch checkpoint, sleep part of an epoch)
let a slow or busy machine deliver it after the run had finished."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO
from whitebox.config import experiment_spec, load_config
from whitebox.data import prepare_dataset

pytestmark = pytest.mark.slow

EPOCHS = 3
STEPS = 30  # per epoch: 600 training images in batches of 20
CASES = {
    "gumbel_simple": ("cifar10", {"source": "synthetic", "classes": ["airplane", "automobile", "bird"],
                                  "image_size": 32, "channels": 3, "train_per_class": 200,
                                  "test_per_class": 20}),
    "inh_mnist": ("mnist", {"source": "synthetic", "classes": ["0", "1", "2"], "image_size": 28,
                            "channels": 1, "train_per_class": 200, "test_per_class": 20}),
}
STOP_AT = 10  # the step of epoch 2 after which the job gets SIGTERM
DRIVER = Path(__file__).with_name("sigterm_at_step.py")
WALL_TIME_KEYS = {"wall_time_s", "finished_at"}


def train_command(experiment: str, data: Path, out: Path, stop_driver: bool = False) -> list[str]:
    """``python -m whitebox train ...``; with ``stop_driver`` run through ``sigterm_at_step.py``."""
    dataset, source = CASES[experiment]
    spec = experiment_spec(load_config(REPO / "config.yaml"), experiment)
    spec = dataclasses.replace(spec, source=source, classes=None, training={
        **spec.training, "epochs": EPOCHS, "batch_size": 20, "eval_batch_size": 100})
    entry = [str(DRIVER)] if stop_driver else ["-m", "whitebox"]
    return [sys.executable, *entry, "train", "--spec", spec.to_json(), "--seed", "0",
            "--data", str(data), "--out-dir", str(out), "--device", "cpu", "--threads", "1"]


def checkpoint_state(checkpoint: Path) -> dict | None:
    """The (atomically written) checkpoint, None while there is none."""
    return torch.load(checkpoint, map_location="cpu", weights_only=False) if checkpoint.exists() else None


def log_rows(run: Path) -> list[dict]:
    """train_log.csv without the wall-time column (the only one allowed to differ)."""
    with open(run / "train_log.csv") as table:
        return [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in csv.DictReader(table)]


@pytest.mark.parametrize("experiment", list(CASES))
def test_sigterm_mid_epoch_checkpoints_and_the_rerun_continues_exactly(tmp_path, experiment):
    dataset, source = CASES[experiment]
    data = tmp_path / "tensors.pt"
    prepare_dataset(dataset, source, tmp_path / "raw", data)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}

    straight = tmp_path / "straight"
    subprocess.run(train_command(experiment, data, straight), check=True, env=env, timeout=900,
                   capture_output=True)

    stopped = tmp_path / "stopped"
    checkpoint = stopped / "checkpoint.pt"
    with open(tmp_path / "stderr.txt", "w") as stderr:
        job = subprocess.run(train_command(experiment, data, stopped, stop_driver=True),
                             env={**env, "WHITEBOX_SIGTERM_AT_STEP": str(STEPS + STOP_AT)},
                             stdout=subprocess.DEVNULL, stderr=stderr, timeout=900)
    assert job.returncode == 143, (tmp_path / "stderr.txt").read_text()[-2000:]
    lines = (tmp_path / "stderr.txt").read_text().splitlines()
    assert re.fullmatch(rf"whitebox train: interrupted by SIGTERM in epoch 2/{EPOCHS} after step "
                        rf"{STOP_AT}/{STEPS}; checkpoint written to {re.escape(str(checkpoint))}; "
                        r"rerun to continue", lines[-1]), lines[-3:]
    assert not (stopped / "metrics.json").exists()
    state = checkpoint_state(checkpoint)
    assert len(state["records"]) == 1
    assert (state["position"]["epoch"], state["position"]["step"]) == (1, STOP_AT)

    resumed = subprocess.run(train_command(experiment, data, stopped), env=env, timeout=900,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming in epoch 2/{EPOCHS} after step {state['position']['step']}/{STEPS}" in resumed.stderr
    assert not checkpoint.exists()  # removed once the run is complete

    assert log_rows(stopped) == log_rows(straight)
    first, second = ({k: v for k, v in json.loads((run / "metrics.json").read_text()).items()
                      if k not in WALL_TIME_KEYS} for run in (straight, stopped))
    assert second == first
    weights = [torch.load(run / "model.pt", map_location="cpu", weights_only=False)["state_dict"]
               for run in (straight, stopped)]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        assert torch.equal(value, weights[1][name]), name
