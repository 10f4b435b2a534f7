"""Bad configs (unknown key, wrong type, unknown model, missing dataset, negative epochs) stop
Snakemake and the library with exactly one line naming the key, and leave results/ untouched."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.integration.workspace import make_workspace, snakemake
from whitebox.code_identity import registered_models
from whitebox.config import experiment_spec, load_config
from whitebox.data import prepare_dataset

pytestmark = pytest.mark.slow

RUN = "results/cifar10/conv_simple/seed0"
TARGETS = ["all", f"{RUN}/metrics.json"]
# What Snakemake itself may print before the Snakefile stops (informational, never an error).
SNAKEMAKE_NOTICES = ("Config file ", "Assuming unrestricted shared filesystem", "host:",
                     "Building DAG of jobs", "Using profile", "Using workflow specific profile")
OLD = 1_000_000_000  # 2001-09-09: a file Snakemake (or anyone) touched would show a new mtime


def _schema_models() -> list[str]:
    return sorted(registered_models())


def _datasets() -> str:
    return ", ".join(sorted(yaml.safe_load((REPO / "config.yaml").read_text())["datasets"]))


def _conv_simple(**entry) -> dict:
    """An extra config file that changes experiments.conv_simple."""
    return {"experiments": {"conv_simple": entry}}


WHERE = "whitebox: config error at experiments/conv_simple"
# id: (extra config file or None, --config overrides, the one line expected on stderr)
CASES = {
    "unknown_key": (_conv_simple(training={"epochz": 3}), [],
                    f"{WHERE}/training: Additional properties are not allowed ('epochz' was unexpected)"),
    "unknown_top_level_key": (None, ["epochz=3"],
                              "whitebox: config error at <top level>: Additional properties are not "
                              "allowed ('epochz' was unexpected)"),
    "wrong_type": (_conv_simple(training={"epochs": "ten"}), [],
                   f"{WHERE}/training/epochs: 'ten' is not of type 'integer'"),
    "wrong_type_on_command_line": (None, ["seeds=0"],
                                   "whitebox: config error at seeds: 0 is not of type 'array'"),
    "unknown_model": (_conv_simple(model="resnet9000"), [],
                      f"{WHERE}/model: unknown model 'resnet9000'; valid: {', '.join(_schema_models())}"),
    "missing_dataset": (_conv_simple(dataset="cifar100"), [],
                        f"{WHERE}/dataset: unknown dataset 'cifar100'; valid: {_datasets()}"),
    "negative_epochs": (_conv_simple(training={"epochs": -3}), [],
                        f"{WHERE}/training/epochs: -3 is less than the minimum of 1"),
}


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """{relative path: (sha256, size, mtime_ns)} of every file and directory under ``root``."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        state[str(path.relative_to(root))] = (digest, stat.st_size, stat.st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace with a finished-looking results/ tree (old mtimes) and tiny prepared data."""
    root = make_workspace(tmp_path_factory.mktemp("bad_configs"))
    files = {f"{RUN}/model.pt": b"\x80\x02weights", f"{RUN}/train_log.csv": b"epoch,train_loss\n1,0.5\n",
             f"{RUN}/metrics.json": b'{"test_accuracy": 50.0}\n',
             "results/cifar2/gumbel_unit59.png": b"\x89PNG\r\n\x1a\nnot really"}
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    source = {"source": "synthetic", "classes": ["airplane", "automobile", "bird"], "image_size": 32,
              "channels": 3, "train_per_class": 4, "test_per_class": 2}
    prepare_dataset("cifar10", source, root / "data" / "cifar10", root / "data" / "cifar10" / "tensors.pt")
    for path in [*root.joinpath("results").rglob("*"), root / "results"]:
        os.utime(path, (OLD, OLD))
    return root


def the_error_line(stderr: str) -> str:
    """Our one line: the only ``whitebox`` line, the last one, beside nothing but Snakemake's notices."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    ours = [line for line in lines if line.startswith("whitebox")]
    assert len(ours) == 1 and lines[-1] == ours[0], stderr
    others = [line for line in lines[:-1] if not line.startswith(SNAKEMAKE_NOTICES)]
    assert not others, stderr
    return ours[0]


@pytest.mark.parametrize("target", TARGETS, ids=["all", "one_model"])
@pytest.mark.parametrize("case", list(CASES))
def test_snakemake_stops_with_one_line_naming_the_key(workspace, case, target):
    extra, overrides, expected = CASES[case]
    args = []
    if extra is not None:
        (workspace / "bad.yaml").write_text(yaml.safe_dump(extra))
        args += ["--configfile", "config.yaml", "bad.yaml"]
    if overrides:
        args += ["--config", *overrides]
    before = snapshot(workspace / "results")
    result = snakemake(workspace, target, "--cores", "1", *args, timeout=300)  # nargs="+" options last
    assert result.returncode != 0
    assert the_error_line(result.stderr) == expected
    assert "whitebox" not in result.stdout and "Traceback" not in result.stdout
    assert snapshot(workspace / "results") == before


SPEC_CASES = {
    "unknown_key": ({"training": {"epochz": 3}},
                    "config error at experiments/conv_simple/training: Additional properties are not "
                    "allowed ('epochz' was unexpected)"),
    "wrong_type": ({"training": {"epochs": "ten"}},
                   "config error at experiments/conv_simple/training/epochs: 'ten' is not of type 'integer'"),
    "unknown_model": ({"model": "resnet9000"},
                      "config error at experiments/conv_simple/model: unknown model 'resnet9000'; "
                      f"valid: {', '.join(_schema_models())}"),
    "negative_epochs": ({"training": {"epochs": -3}},
                        "config error at experiments/conv_simple/training/epochs: -3 is less than the "
                        "minimum of 1"),
}


@pytest.mark.parametrize("case", list(SPEC_CASES))
def test_library_train_stops_with_one_line_before_writing(workspace, case):
    """``python -m whitebox train`` with a hand-edited spec: one line, the run directory untouched."""
    change, message = SPEC_CASES[case]
    spec = experiment_spec(load_config(workspace / "config.yaml"), "conv_simple")
    if "training" in change:
        change = {"training": {**spec.training, **change["training"]}}
    spec = dataclasses.replace(spec, **change)
    before = snapshot(workspace / "results")
    result = subprocess.run(
        [sys.executable, "-m", "whitebox", "train", "--spec", spec.to_json(), "--seed", "0",
         "--data", "data/cifar10/tensors.pt", "--out-dir", RUN, "--device", "cpu", "--threads", "1"],
        cwd=workspace, env={**os.environ, "PYTHONPATH": str(workspace / "src")},
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"whitebox train: error: {message}"]
    assert snapshot(workspace / "results") == before
