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


# The log reports no accuracy for these stages. CI trains them for fewer epochs than config.yaml
# (the schedule then spans the shorter run) and checks floors 2 points below what seed 0 reached
# that way on the stand-in: positive_lenet 86.80 % in 5 epochs (89.55 % in config.yaml's 10),
# gumbel2 89.00 % in 4 (91.85 % in 8). A regression in the positive projection, the Gumbel
# sampling or the tau schedule fails here.
SHORT_EPOCHS = {"positive_lenet": 5, "lenet_unconstrained": 5, "gumbel2": 4}
STAND_IN_FLOORS = {"positive_lenet": 84.8, "gumbel2": 87.0}


@pytest.fixture(scope="module")
def trained(cifar10_tensors, tmp_path_factory):
    """``trained(experiment)`` -> (run dir, spec, metrics): each experiment trained once here,
    for its SHORT_EPOCHS."""
    runs = {}

    def train(experiment: str):
        if experiment not in runs:
            out = tmp_path_factory.mktemp(experiment)
            runs[experiment] = (out, *train_seed0(experiment, cifar10_tensors, out,
                                                  epochs=SHORT_EPOCHS[experiment]))
        return runs[experiment]

    return train


@pytest.mark.parametrize("experiment", sorted(STAND_IN_FLOORS))
def test_cifar2_stage_reaches_its_stand_in_floor(experiment, trained):
    _, _, metrics = trained(experiment)
    assert metrics["test_accuracy"] >= STAND_IN_FLOORS[experiment], (
        f"{experiment}: {metrics['test_accuracy']:.2f} % < {STAND_IN_FLOORS[experiment]} %")


# augmax_cifar3 runs six copies of every image through its trunk: an epoch on all 15,000 train
# images takes about 210 s on 2 quiet CPU cores (72.90 % after 1 epoch, 77.77 % after 3). CI
# trains 1 epoch on the first AUGMAX_PER_CLASS train images of each class (the cosine schedule
# over it; all 3,000 test images) and checks a floor 2 points below what seed 0 reached that way
# on the stand-in: 64.07 % (chance is 33 %).
AUGMAX_PER_CLASS = 2000
AUGMAX_FLOOR = 64.07 - 2.0


def first_train_images(tensors: Path, per_class: int, out: Path) -> Path:
    """A prepared dataset like ``tensors`` with only the first ``per_class`` train images of each
    class (test split and source unchanged)."""
    import torch

    from whitebox.data.dataset import Dataset, Split, load_prepared, read_source, save_dataset

    data = load_prepared(tensors)
    keep = torch.zeros(len(data.train), dtype=torch.bool)
    for label in range(data.num_classes):
        keep[(data.train.labels == label).nonzero().flatten()[:per_class]] = True
    train = Split(data.train.images[keep].clone(), data.train.labels[keep].clone())
    save_dataset(Dataset(data.name, data.classes, train, data.test), out, read_source(tensors))
    return out


def test_augmax_slots_reach_their_stand_in_floor(cifar10_tensors, tmp_path):
    source, tensors = cifar10_tensors
    fewer = first_train_images(tensors, AUGMAX_PER_CLASS, tmp_path / "fewer.pt")
    _, metrics = train_seed0("augmax_cifar3", (source, fewer), tmp_path / "run", epochs=1)
    assert metrics["train_images"] == 3 * AUGMAX_PER_CLASS and metrics["test_images"] == 3_000
    assert metrics["test_accuracy"] >= AUGMAX_FLOOR, (
        f"augmax_cifar3, 1 epoch: {metrics['test_accuracy']:.2f} % < {AUGMAX_FLOOR} %")


# Alignment of seed 0 on the stand-in (gradient metrics as config.yaml sets them), positive_lenet
# vs lenet_unconstrained: 0.131 vs 0.033 after 5 epochs (as here), 0.150 vs 0.035 after 10; the
# test asks for about half that gain.
ALIGNMENT_GAIN = 0.05


def test_positive_weights_align_the_input_gradients(trained, cifar10_tensors, tmp_path):
    """The log (09.09 -- 30.09.2024): restricting the weights to >= 0 "boosted gradient
    alignment considerably". Seed 0 of both networks (SHORT_EPOCHS), gradient metrics as the
    pipeline runs them (config.yaml's gradient_metrics block)."""
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


# Robust twin (training.adversarial, PGD at eps 8/255 in 3 steps) vs lenet_unconstrained, both
# with config.yaml's training block cut to ROBUST_EPOCHS epochs on the first ROBUST_TRAIN_IMAGES
# stand-in train images (104 s on 2 CPU cores that other jobs loaded, load average 3-4). Measured
# on the first 500 test images, standard vs robust: seed 0, 2 epochs (this test): alignment 0.065
# vs 0.201, PGD accuracy (eps 8/255, 10 steps) 54.8 vs 66.0 %, clean accuracy 85.6 vs 83.2 %;
# 3 epochs, seeds 0 / 1: alignment 0.052 / 0.038 vs 0.198 / 0.152, PGD accuracy 54.0 / 50.0 vs
# 70.0 / 70.6 %, clean accuracy 90.6 / 91.1 vs 85.9 / 84.7 %. The test asks for well under half
# of either gain.
ROBUST_TRAIN_IMAGES = 2000
ROBUST_EPOCHS = 2
ROBUST_TEST_IMAGES = 500  # alignment and PGD accuracy on the first 500 test images
ROBUST_ALIGNMENT_GAIN = 0.05
ROBUST_PGD_GAIN = 5.0  # points


def robust_twin_numbers(experiment: str, cifar10_tensors, seed: int = 0) -> dict:
    """Clean and PGD accuracy (at the robust twin's eps, 10 steps) and mean gradient alignment
    of ``experiment`` trained as above."""
    import torch

    from whitebox.data import load_prepared, mean_std
    from whitebox.evaluation.accuracy import eval_argmax
    from whitebox.evaluation.pgd import pgd_linf
    from whitebox.explain.gradients import target_gradients
    from whitebox.explain.metrics import alignment
    from whitebox.models import build_classifier
    from whitebox.training import TrainSettings, fit

    config = load_config(REPO / "config.yaml")
    spec = experiment_spec(config, experiment)
    eps = experiment_spec(config, "lenet_unconstrained_robust").training["adversarial"]["eps"]
    data = load_prepared(cifar10_tensors[1], spec.classes)
    settings = TrainSettings.from_config({**spec.training, "epochs": ROBUST_EPOCHS})
    torch.manual_seed(seed)
    model = build_classifier(spec.model, len(data.classes), *mean_std(data.train), image_size=32,
                             **spec.model_args)
    train, test = data.train, data.test
    fit(model, train.images[:ROBUST_TRAIN_IMAGES], train.labels[:ROBUST_TRAIN_IMAGES],
        test.images[:ROBUST_TEST_IMAGES], test.labels[:ROBUST_TEST_IMAGES], settings, seed=seed)
    model.eval()
    images = test.images[:ROBUST_TEST_IMAGES].float() / 255
    labels = test.labels[:ROBUST_TEST_IMAGES]
    attacked = pgd_linf(model, images, labels, eps, steps=10, seed=seed)
    return {"accuracy": 100 * (eval_argmax(model, images) == labels).float().mean().item(),
            "pgd_accuracy": 100 * (eval_argmax(model, attacked) == labels).float().mean().item(),
            "alignment": alignment(images, target_gradients(model, images, labels)).mean().item()}


def test_adversarial_training_aligns_the_input_gradients(cifar10_tensors):
    """Adversarially trained (Tsipras et al. 2019), the unconstrained LeNet's input gradients
    align with the image far better, and it resists PGD at its training eps."""
    numbers = {name: robust_twin_numbers(name, cifar10_tensors)
               for name in ("lenet_unconstrained", "lenet_unconstrained_robust")}
    standard, robust = numbers["lenet_unconstrained"], numbers["lenet_unconstrained_robust"]
    assert robust["alignment"] > standard["alignment"] + ROBUST_ALIGNMENT_GAIN, numbers
    assert robust["pgd_accuracy"] > standard["pgd_accuracy"] + ROBUST_PGD_GAIN, numbers
