"""User errors at the command line end in one line naming the cause and the fix."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torchvision

from tests.conftest import REPO, one_error_line
from whitebox.cli import main
from whitebox.cli.evaluate import gradient_metric_settings
from whitebox.config import experiment_spec, load_config
from whitebox.models import model_names


def test_no_network_and_no_mirror_names_the_file_and_the_option(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url",
                        "http://127.0.0.1:9/cifar-10-python.tar.gz")
    root = tmp_path / "cifar10"
    status = main(["prepare-data", "--dataset", "cifar10", "--source", '{"source": "torchvision"}',
                   "--root", str(root), "--out", str(root / "tensors.pt")])
    assert status == 1
    line = one_error_line(capsys)
    assert line.startswith("whitebox prepare-data: error:")
    assert "cifar-10-python.tar.gz" in line and "data_mirror" in line
    assert not (root / "tensors.pt").exists()
    assert not root.exists() or not any(root.rglob("*.tar.gz*"))


def test_unknown_model_lists_valid_names(tmp_path, capsys):
    spec = experiment_spec(load_config(REPO / "config.yaml"), "directional")
    spec = dataclasses.replace(spec, model="resnet18")
    status = main(["train", "--spec", spec.to_json(), "--seed", "0", "--data", str(tmp_path / "x.pt"),
                   "--out-dir", str(tmp_path / "run")])
    assert status == 1
    valid = ", ".join(model_names())
    assert one_error_line(capsys).endswith(f"unknown model 'resnet18'; valid: {valid}")
    assert not (tmp_path / "run").exists()


def test_missing_prepared_data_says_how_to_make_it(tmp_path, capsys):
    spec = experiment_spec(load_config(REPO / "config.yaml"), "directional")
    status = main(["train", "--spec", spec.to_json(), "--seed", "0",
                   "--data", str(tmp_path / "tensors.pt"), "--out-dir", str(tmp_path / "run")])
    assert status == 1
    assert "tensors.pt" in one_error_line(capsys)


def test_unknown_layer_for_filters_lists_layers(tmp_path, capsys):
    spec = experiment_spec(load_config(REPO / "config.yaml"), "conj_disj")
    source = {"source": "synthetic", "classes": ["airplane", "automobile"], "train_per_class": 20,
              "test_per_class": 10}
    spec = dataclasses.replace(spec, source=source,
                               training={**spec.training, "epochs": 1, "batch_size": 8})
    data = tmp_path / "tensors.pt"
    assert main(["prepare-data", "--dataset", "cifar10", "--source", json.dumps(source),
                 "--root", str(tmp_path), "--out", str(data)]) == 0
    assert main(["train", "--spec", spec.to_json(), "--seed", "0", "--data", str(data),
                 "--out-dir", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    status = main(["figure", "filters", "--model", str(tmp_path / "run" / "model.pt"), "--layer", "conv9",
                   "--out", str(tmp_path / "f.png")])
    assert status == 1
    assert one_error_line(capsys).endswith("layers with weights: conv1, bn1")
    assert not (tmp_path / "f.png").exists()
    status = main(["figure", "noise_gradients", "--model", str(tmp_path / "run" / "model.pt"),
                   "--layer", "net.conv1", "--units", "500", "--out", str(tmp_path / "n.png")])
    assert status == 1
    assert "500" in one_error_line(capsys)
    assert not (tmp_path / "n.png").exists()


def test_missing_model_says_how_to_make_it(tmp_path, capsys):
    missing = tmp_path / "results" / "model.pt"
    status = main(["figure", "noise_gradients", "--model", str(missing), "--layer", "net.conv1",
                   "--units", "0", "--out", str(tmp_path / "n.png")])
    assert status == 1
    assert one_error_line(capsys).endswith(f"no trained model at {missing}; train it first "
                                           f"(snakemake {missing})")


def test_missing_metrics_for_the_paper_is_one_line(tmp_path, capsys):
    status = main(["paper", "--metrics", str(tmp_path / "metrics.json"), "--templates",
                   str(REPO / "paper" / "templates"), "--out", str(tmp_path / "generated"),
                   "--paper-dir", str(tmp_path)])
    assert status == 1
    assert "metrics.json" in one_error_line(capsys)
    assert not (tmp_path / "generated").exists()


def bad_training_setup(tmp_path, experiment: str, **changes) -> list[str]:
    """``whitebox train`` arguments for ``experiment`` on tiny synthetic data, with spec changes."""
    source = {"source": "synthetic", "classes": ["airplane", "automobile", "bird"],
              "train_per_class": 4, "test_per_class": 2}
    spec = dataclasses.replace(experiment_spec(load_config(REPO / "config.yaml"), experiment),
                               source=source, **changes)
    data = tmp_path / "tensors.pt"
    assert main(["prepare-data", "--dataset", "cifar10", "--source", json.dumps(source),
                 "--root", str(tmp_path), "--out", str(data)]) == 0
    return ["train", "--spec", spec.to_json(), "--seed", "0", "--data", str(data),
            "--out-dir", str(tmp_path / "run")]


def test_bad_model_argument_names_the_key(tmp_path, capsys):
    args = bad_training_setup(tmp_path, "projective_conv",
                              model_args={"part": "fisheye"}, classes=["airplane", "automobile"])
    capsys.readouterr()
    assert main(args) == 1
    line = one_error_line(capsys)
    assert "experiments/projective_conv/model_args" in line and "fisheye" in line
    assert not (tmp_path / "run").exists()


def test_colour_invariance_on_a_two_headed_model_names_the_key(tmp_path, capsys):
    spec = experiment_spec(load_config(REPO / "config.yaml"), "negative_branch")
    training = {**spec.training, "invariance": {"weight": 1.0, "augmentations": ["channel_shuffle"]}}
    args = bad_training_setup(tmp_path, "negative_branch", training=training)
    capsys.readouterr()
    assert main(args) == 1
    line = one_error_line(capsys)
    assert "experiments/negative_branch/training/invariance" in line and "exactly one SoftMaxPool" in line


def test_gradient_metrics_writes_its_json_and_refuses_a_twin_of_another_model(tmp_path, capsys):
    config = load_config(REPO / "config.yaml")
    source = {"source": "synthetic", "classes": ["airplane", "automobile"], "train_per_class": 20,
              "test_per_class": 10}
    data = tmp_path / "tensors.pt"
    assert main(["prepare-data", "--dataset", "cifar10", "--source", json.dumps(source),
                 "--root", str(tmp_path), "--out", str(data)]) == 0
    for name in ("conj_disj", "directional"):
        spec = experiment_spec(config, name)
        spec = dataclasses.replace(spec, source=source,
                                   training={**spec.training, "epochs": 1, "batch_size": 8})
        assert main(["train", "--spec", spec.to_json(), "--seed", "0", "--data", str(data),
                     "--out-dir", str(tmp_path / name)]) == 0
    out = tmp_path / "gradient_metrics.json"
    assert main(["gradient-metrics", "--model", str(tmp_path / "conj_disj" / "model.pt"),
                 "--data", str(data), "--n-images", "8", "--n-noise", "3", "--cascade-steps", "2",
                 "--out", str(out)]) == 0
    written = json.loads(out.read_text())
    assert written["experiment"] == "conj_disj" and written["settings"]["n_images"] == 8
    assert written["settings"]["max_classes"] == gradient_metric_settings({})["max_classes"]
    assert 0 <= written["result"]["alignment"] <= 1 and len(written["result"]["model_randomisation"]) == 2
    capsys.readouterr()
    refused = tmp_path / "refused.json"
    status = main(["gradient-metrics", "--model", str(tmp_path / "conj_disj" / "model.pt"),
                   "--twin", str(tmp_path / "directional" / "model.pt"), "--data", str(data),
                   "--out", str(refused)])
    assert status == 1
    assert one_error_line(capsys).endswith("a random-label twin must be")
    assert not refused.exists()
    status = main(["gradient-metrics", "--model", str(tmp_path / "conj_disj" / "model.pt"),
                   "--data", str(data), "--n-noise", "1", "--max-classes", "1", "--out", str(refused)])
    assert status == 1
    line = one_error_line(capsys)
    assert "n_noise: 1 is less than the minimum of 2" in line
    assert "max_classes: 1 is less than the minimum of 2" in line
    assert not refused.exists()


@pytest.mark.parametrize("command", ["figure", "compare", "paper", "summary", "evaluate", "train"])
def test_a_command_line_is_parsed_without_the_training_stack(command):
    """Importing the CLI and parsing one command imports neither torch nor the training loop:
    a command loads its room's stack only when it runs."""
    code = ("import sys; from whitebox.cli import build_parser; "
            f"build_parser({command!r}); "
            "heavy = sorted(m for m in ('torch', 'whitebox.training.loop', 'matplotlib') "
            "if m in sys.modules); print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert result.stdout.strip() == "[]"
