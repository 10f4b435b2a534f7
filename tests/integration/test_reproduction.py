"""CIFAR stages of the log, trained on CPU on real images, land near its numbers (or floors).

Data: the CIFAR-10 JPEG stand-in in ../shared/data (the original is not downloadable
here), read through the imagefolder source exactly as a user's config would.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from tests.conftest import REPO
from whitebox.cli import main
from whitebox.config import experiment_spec, gradient_metric_options, load_config, presentation

pytestmark = pytest.mark.slow
TOLERANCE = 2.0  # percentage points around the number the log reports


@pytest.fixture(scope="module")
def cifar10_tensors(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("data") / "cifar10"
    source = {"source": "imagefolder", "path": str(shared_data / "cifar10-jpeg.zip")}
    out = root / "tensors.pt"
    assert main(["prepare-data", "--dataset", "cifar10", "--source", json.dumps(source),
                 "--root", str(root), "--out", str(out)]) == 0
    return source, out


def train_seed0(experiment: str, cifar10_tensors, out: Path, epochs: int | None = None):
    """Train ``experiment`` from config.yaml (seed 0, CPU) on the stand-in; its spec and metrics.

    ``epochs`` shortens the run (the schedule then spans the shorter run)."""
    source, tensors = cifar10_tensors
    spec = experiment_spec(load_config(REPO / "config.yaml"), experiment)
    training = spec.training if epochs is None else {**spec.training, "epochs": epochs}
    spec = dataclasses.replace(spec, source=source, training=training)
    assert main(["train", "--spec", spec.to_json(), "--seed", "0", "--data", str(tensors),
                 "--out-dir", str(out), "--device", "cpu"]) == 0
    return spec, json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize("experiment", ["conj_disj", "directional"])
def test_cifar2_stage_reaches_the_logged_accuracy(experiment, cifar10_tensors, tmp_path):
    spec, metrics = train_seed0(experiment, cifar10_tensors, tmp_path)
    assert metrics["train_images"] == 10_000 and metrics["test_images"] == 2_000
    reported = presentation(load_config(REPO / "config.yaml"))[experiment]["reported"]["test_accuracy"]
    assert abs(metrics["test_accuracy"] - reported) <= TOLERANCE, (
        f"{experiment}: {metrics['test_accuracy']:.2f} % vs the log's {reported} %")


# The log reports no accuracy for these stages; the floors sit 2 points below what seed 0
# reached on the stand-in with the config's settings (positive_lenet 89.5 % in 10 epochs,
# gumbel2 91.85 % in 8 epochs; about 100 s and 60 s on 2 CPU cores), so a regression in the
# positive projection, the Gumbel sampling or the tau schedule fails here.
STAND_IN_FLOORS = {"positive_lenet": 87.5, "gumbel2": 89.5}


@pytest.fixture(scope="module")
def trained(cifar10_tensors, tmp_path_factory):
    """``trained(experiment)`` -> (run dir, spec, metrics): each experiment trained once here."""
    runs = {}

    def train(experiment: str):
        if experiment not in runs:
            out = tmp_path_factory.mktemp(experiment)
            runs[experiment] = (out, *train_seed0(experiment, cifar10_tensors, out))
        return runs[experiment]

    return train


@pytest.mark.parametrize("experiment", sorted(STAND_IN_FLOORS))
def test_cifar2_stage_reaches_its_stand_in_floor(experiment, trained):
    _, _, metrics = trained(experiment)
    assert metrics["test_accuracy"] >= STAND_IN_FLOORS[experiment], (
        f"{experiment}: {metrics['test_accuracy']:.2f} % < {STAND_IN_FLOORS[experiment]} %")


# augmax_cifar3 runs six copies of every image through its trunk, so its full 10 epochs take
# about 13 minutes on 2 CPU cores; CI trains 3 epochs (cosine over 3) and checks a floor 2
# points below what seed 0 reached that way on the stand-in (77.77 %, 12 min under load).
AUGMAX_3_EPOCHS = 77.77
AUGMAX_FLOOR = AUGMAX_3_EPOCHS - 2.0


def test_augmax_slots_reach_their_stand_in_floor(cifar10_tensors, tmp_path):
    _, metrics = train_seed0("augmax_cifar3", cifar10_tensors, tmp_path, epochs=3)
    assert metrics["train_images"] == 15_000 and metrics["test_images"] == 3_000
    assert metrics["test_accuracy"] >= AUGMAX_FLOOR, (
        f"augmax_cifar3, 3 epochs: {metrics['test_accuracy']:.2f} % < {AUGMAX_FLOOR} %")


# Alignment of seed 0 on the stand-in: positive_lenet 0.150, lenet_unconstrained 0.035 (gradient
# metrics as config.yaml sets them); the test asks for less than half that gain.
ALIGNMENT_GAIN = 0.05


def test_positive_weights_align_the_input_gradients(trained, cifar10_tensors, tmp_path):
    """The log (09.09 -- 30.09.2024): restricting the weights to >= 0 "boosted gradient
    alignment considerably". Seed 0 of both networks, gradient metrics as the pipeline runs
    them (config.yaml's gradient_metrics block)."""
    settings = load_config(REPO / "config.yaml")["gradient_metrics"]
    options = gradient_metric_options(settings)
    alignment = {}
    for experiment in ("positive_lenet", "lenet_unconstrained"):
        run, _, _ = trained(experiment)
        out = tmp_path / f"{experiment}.json"
        assert main(["gradient-metrics", "--model", str(run / "model.pt"),
                     "--data", str(cifar10_tensors[1]), *options, "--out", str(out)]) == 0
        alignment[experiment] = json.loads(out.read_text())["result"]["alignment"]
    assert alignment["positive_lenet"] > alignment["lenet_unconstrained"] + ALIGNMENT_GAIN, alignment
