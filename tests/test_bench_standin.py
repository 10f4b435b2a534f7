"""The pure parts of benchmarks/standin.py (`make standin`): its overrides, the workspace copy,
the report and the one-line stop without ../shared/data; the run itself is not tested here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*

from benchmarks import standin  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from whitebox.config import base_datasets, presentation, validate_config  # noqa: E402


def test_the_stand_in_runs_its_experiments_on_the_offline_data_and_notes_the_jpeg_copy():
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    for key, value in standin.overrides(standin.EXPERIMENTS).items():
        raw[key] = {**raw[key], **value} if key == "datasets" else value
    config = validate_config(raw)  # only_experiments holds what their claims compare with
    assert sorted(config["experiments"]) == sorted(standin.EXPERIMENTS)
    assert base_datasets(config) == ["cifar10", "mnist"]
    assert config["datasets"]["cifar10"]["path"].endswith("shared/data/cifar10-jpeg.zip")
    shown = presentation(config)
    assert shown["directional"]["data_note"] == standin.NOTE and "not CIFAR-10" in standin.NOTE
    assert shown["mlp_mnist"]["data_note"] is None
    assert shown["conj_disj"]["untested"] == "not run (only_experiments)"


def test_the_workspace_gets_the_code_with_its_times_and_keeps_what_the_workflow_made(tmp_path):
    kept = [tmp_path / "data" / "x.pt", tmp_path / "paper" / "generated" / "macros.tex",
            tmp_path / "paper" / "main.pdf"]
    stale = tmp_path / "workflow" / "rules" / "gone.smk"
    for path in [*kept, stale]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    standin.sync_code(tmp_path)
    assert all(path.exists() for path in kept) and not stale.exists()
    copied = tmp_path / "workflow" / "rules" / "train.smk"
    assert copied.read_bytes() == (REPO / "workflow" / "rules" / "train.smk").read_bytes()
    assert os.stat(copied).st_mtime == os.stat(REPO / "workflow" / "rules" / "train.smk").st_mtime
    assert (tmp_path / "Snakefile").is_file() and not list(tmp_path.rglob("__pycache__"))


def test_the_report_gives_each_claim_its_value_comparison_and_verdict(tmp_path):
    summary = tmp_path / "results" / "summary"
    summary.mkdir(parents=True)
    (summary / "claims.csv").write_text(
        "experiment,claim,metric,relation,than,value,margin,measured_mean,measured_std,"
        "compared_mean,compared_std,difference,spread,verdict\n"
        "mlp_mnist_robust,aligns,alignment,higher,mlp_mnist,,0.02,0.3664,0.0,0.2093,0.0,"
        "0.157,0.0,reproduced\n"
        "mlp_mnist,twin,label_randomisation,lower,,0.5,0,0.0296,0.0,,,0.47,0.0,reproduced\n")
    (summary / "experiments.csv").write_text(
        "experiment,title,dataset,seeds,test_accuracy_mean,test_accuracy_std\n"
        "mlp_mnist,MLP,mnist,1,95.56,0.0\nmlp_mnist_robust,MLP robust,mnist,1,95.1,0.0\n")
    text = standin.report(tmp_path, ["mlp_mnist", "mlp_mnist_robust"])
    assert "mlp_mnist_robust: alignment 0.3664 ± 0, claimed higher than mlp_mnist " \
           "(0.2093 ± 0) -> reproduced" in text
    assert "label_randomisation 0.0296 ± 0, claimed lower than 0.5 -> reproduced" in text
    assert "mlp_mnist_robust   95.10  (mnist)" in text
    assert str(tmp_path / "paper" / "main.pdf") in text and standin.ACCURACY_QUALITY in text


def test_without_the_shared_data_it_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(standin, "CIFAR_JPEG", tmp_path / "nope" / "cifar10-jpeg.zip")
    with pytest.raises(SystemExit) as stop:
        standin.main(["--workspace", str(tmp_path / "ws")])
    message = str(stop.value.code)
    assert "nope/cifar10-jpeg.zip not found" in message and "\n" not in message
    assert not (tmp_path / "ws").exists()
