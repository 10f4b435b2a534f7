"""The CUDA path of training (bf16 autocast, channels_last): runs only where a GPU is.

CI machines have none, so these skip there with a visible reason; run them on a GPU
machine with ``pytest tests/test_cuda.py``.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from whitebox.cli import main
from whitebox.data import load_prepared, prepare_dataset
from whitebox.evaluation.accuracy import predict
from whitebox.models import classifier_from_checkpoint
from whitebox.spec import RunSpec

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible")

SOURCE = {"source": "synthetic", "classes": ["airplane", "automobile", "bird"],
          "train_per_class": 1000, "test_per_class": 200}


def spec(model: str) -> RunSpec:
    return RunSpec(
        name=model, dataset="cifar2", base_dataset="cifar10", source=SOURCE,
        classes=["airplane", "automobile"], model=model,
        training={"epochs": 3, "batch_size": 128, "optimizer": {"name": "adam", "lr": 1e-3},
                  "schedule": "constant", "augment": ["hflip"], "label_smoothing": 0.0,
                  "eval_batch_size": 1000})


@pytest.fixture(scope="module")
def tensors(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    prepare_dataset("cifar10", SOURCE, root, root / "tensors.pt")
    return root / "tensors.pt"


@pytest.mark.parametrize("model", ["conj_disj", "directional"])
def test_cli_trains_on_cuda_and_records_the_gpu(model, tensors, tmp_path):
    assert main(["train", "--spec", spec(model).to_json(), "--seed", "0", "--data", str(tensors),
                 "--out-dir", str(tmp_path), "--device", "cuda"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["device"] == "cuda"
    assert metrics["device_name"] == torch.cuda.get_device_name()
    assert metrics["test_accuracy"] > 85


def test_gpu_trained_model_gives_the_same_predictions_on_cpu(tensors, tmp_path):
    assert main(["train", "--spec", spec("directional").to_json(), "--seed", "0",
                 "--data", str(tensors), "--out-dir", str(tmp_path), "--device", "cuda"]) == 0
    state = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=False)
    model = classifier_from_checkpoint(state)
    images = load_prepared(tensors, ["airplane", "automobile"]).test.images
    on_cpu = predict(model, images)
    on_gpu = predict(model.cuda(), images.cuda()).cpu()  # bf16 autocast on the GPU
    assert (on_cpu == on_gpu).float().mean() > 0.98


def test_inh_trains_on_cuda_in_float32_and_predicts_like_cpu(tensors, tmp_path):
    inh = dataclasses.replace(spec("inh"), model_args={"lr": 7.0, "scale": 30.0, "pooling": "softmax",
                                                        "temperature": 0.12, "candidates": "batch"})
    assert main(["train", "--spec", inh.to_json(), "--seed", "0", "--data", str(tensors),
                 "--out-dir", str(tmp_path), "--device", "cuda"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["slots"] > 0 and metrics["test_accuracy"] > 85
    state = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=False)
    model = classifier_from_checkpoint(state)
    images = load_prepared(tensors, ["airplane", "automobile"]).test.images
    on_cpu = predict(model, images)
    on_gpu = predict(model.cuda(), images.cuda()).cpu()
    assert (on_cpu == on_gpu).float().mean() > 0.99


def test_flexible_part_prototypes_train_push_and_refit_on_cuda(tmp_path):
    """The CUB stage's prototype network on the GPU path (bf16 autocast): warm-up, joint epoch,
    push onto real training patches and last-layer refit, on a fake CUB tree at 64x64."""
    from tests.fake_cub import write_fake_cub

    mirror = tmp_path / "mirror"
    write_fake_cub(mirror, n_classes=3, train_per_class=8, test_per_class=4)
    source = {"source": "cub", "size": 64}
    data = tmp_path / "tensors.pt"
    prepare_dataset("cub200", source, tmp_path / "cub", data, mirror)
    flexparts = RunSpec(
        name="cub_flexparts_resnet34", dataset="cub200", base_dataset="cub200", source=source,
        classes=None, model="prototype_network",
        model_args={"backbone": "resnet34", "per_class": 2, "parts": 3, "dim": 16,
                    "warmup_epochs": 1, "push_epochs": [2]},
        training={"epochs": 2, "batch_size": 8, "optimizer": {"name": "adam", "lr": 1e-4},
                  "augment": ["hflip"], "eval_batch_size": 8})
    run = tmp_path / "run"
    assert main(["train", "--spec", flexparts.to_json(), "--seed", "0", "--data", str(data),
                 "--out-dir", str(run), "--device", "cuda"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["device"] == "cuda" and 0 <= metrics["test_accuracy"] <= 100
    state = torch.load(run / "model.pt", map_location="cpu", weights_only=False)
    assert (state["state_dict"]["net.prototypes.push_source"] >= 0).all()
