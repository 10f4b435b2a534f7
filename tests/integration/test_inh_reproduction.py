"""Incremental Neural Hashing on real MNIST (../shared/data), a reduced run on CPU.

The full run (config.yaml's inh_mnist: 60k images, all epochs) goes in the paper; this
test trains on the first 20,000 training images for 3 epochs (seconds on 2 cores)
with the same layer settings and checks a stated accuracy within a stated slot budget.
"""

from __future__ import annotations

import pytest
import torch

from tests.conftest import REPO
from whitebox.config import experiment_spec, load_config
from whitebox.data import load_prepared, mean_std, prepare_dataset
from whitebox.models import build_classifier
from whitebox.training import TrainSettings, fit

pytestmark = pytest.mark.slow
TRAIN_IMAGES, EPOCHS = 20_000, 3
MIN_ACCURACY, MAX_SLOTS = 96.0, 720  # measured: 96.6 % with 668 slots


def test_inh_on_mnist_reaches_the_stated_accuracy_within_the_slot_budget(shared_data, tmp_path):
    tensors = tmp_path / "mnist" / "tensors.pt"
    prepare_dataset("mnist", {"source": "torchvision"}, tmp_path / "mnist", tensors, mirror=shared_data)
    data = load_prepared(tensors)
    spec = experiment_spec(load_config(REPO / "config.yaml"), "inh_mnist")
    settings = TrainSettings(**{**spec.training, "epochs": EPOCHS})
    torch.manual_seed(0)
    mean, std = mean_std(data.train)
    model = build_classifier("inh", 10, mean, std, image_size=28, **spec.model_args)
    records, _ = fit(model, data.train.images[:TRAIN_IMAGES], data.train.labels[:TRAIN_IMAGES],
                     data.test.images, data.test.labels, settings, seed=0)
    final = records[-1]
    assert final.slots == model.net.inh.n_slots <= MAX_SLOTS
    assert final.test_accuracy >= MIN_ACCURACY, final
