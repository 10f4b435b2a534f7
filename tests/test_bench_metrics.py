"""benchmarks/metrics.py: its helpers, and one experiment's cost line on tiny synthetic data
(structure and arithmetic only; what the times are is the benchmark's business)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*

from benchmarks import metrics  # noqa: E402
from benchmarks.report import Measurement  # noqa: E402
from whitebox.data import make_synthetic  # noqa: E402
from whitebox.spec import RunSpec  # noqa: E402

CONFIG = {
    "datasets": {"cifar10": {"source": "torchvision"},
                 "cifar2": {"subset_of": "cifar10", "classes": ["airplane", "automobile"]},
                 "mnist": {"source": "torchvision"},
                 "cub200": {"source": "cub"}},
    "experiments": {"cub_resnet34": {"dataset": "cub200", "gpu": True},
                    "directional": {"dataset": "cifar2"},
                    "conv_simple": {"dataset": "cifar10", "gpu": False},
                    "mlp_mnist": {"dataset": "mnist"},
                    "positive_lenet": {"dataset": "cifar2"}},
}
SETTINGS = {"n_images": 6, "n_noise": 3, "noise_std": 0.25, "noise_seed": 0, "max_classes": 10,
            "cascade_steps": 2, "curve_steps": 3}
KEYS = {"experiment", "metric_s", "epoch_s", "epochs", "ratio", "metric_timed_s", "epoch_timed_s",
        "n_timed", "n_full_train", "twin", "n_images", "n_noise", "n_classes_used", "settings",
        "curves_s", "curves_ratio"}


def spec(name: str, model: str, epochs: int, **model_args) -> RunSpec:
    return RunSpec(name=name, dataset="tiny", base_dataset="tiny", source={}, classes=None,
                          model=model, model_args=model_args,
                          training={"epochs": epochs, "batch_size": 32})


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic("tiny", ["a", "b", "c"], train_per_class=22, test_per_class=4)


def test_cpu_experiments_skip_gpu_ones_in_config_order():
    assert metrics.cpu_experiments(CONFIG) == ["directional", "conv_simple", "mlp_mnist",
                                               "positive_lenet"]


def test_quick_experiments_are_the_small_ones_else_the_first_three():
    assert metrics.quick_experiments(metrics.cpu_experiments(CONFIG)) == [
        "directional", "mlp_mnist", "positive_lenet"]
    assert metrics.quick_experiments(["a", "b", "c", "d"]) == ["a", "b", "c"]


def test_cost_ratio_is_metric_over_all_epochs():
    assert metrics.cost_ratio(2.0, 4.0, 10) == pytest.approx(0.05)


def test_full_train_size_of_cifar_subsets_and_of_loaded_data():
    cifar2 = RunSpec(name="d", dataset="cifar2", base_dataset="cifar10", source={},
                            classes=["airplane", "automobile"], model="directional")
    assert metrics.full_train_size(CONFIG, cifar2, base=None) == 10_000
    digits = make_synthetic("mnist", ["0", "1", "2"], channels=1, train_per_class=5, test_per_class=1)
    mnist = RunSpec(name="m", dataset="mnist", base_dataset="mnist", source={}, classes=None,
                           model="mlp")
    assert metrics.full_train_size(CONFIG, mnist, digits) == 15
    subset = RunSpec(**{**mnist.__dict__, "classes": ["0", "2"]})
    assert metrics.full_train_size(CONFIG, subset, digits) == 10


def test_worst_is_the_largest_measured_share():
    lines = [Measurement("a", 0.5, "%", details={"experiment": "a"}),
             Measurement("b", None, "%", details={"experiment": "b"}),
             Measurement("c", 7.0, "%", details={"experiment": "c"})]
    summary = metrics.worst(lines)
    assert (summary.value, summary.details["experiment"], summary.status) == (7.0, "c", "MISS")
    assert summary.target == "< 5 %"
    assert metrics.worst([lines[1]]) is None


@pytest.mark.parametrize("twin", [False, True])
def test_experiment_cost_line(tiny, twin):
    threads = torch.get_num_threads()
    experiment = spec("tiny_lenet", "positive_lenet", epochs=7) if twin else spec("tiny_mlp", "mlp", 3)
    twin_spec = spec("tiny_lenet_shuffled", "positive_lenet", epochs=7) if twin else None
    line = metrics.experiment_cost(experiment, tiny, n_full_train=660, settings=SETTINGS,
                                   twin_spec=twin_spec, source="synthetic")
    details = line.details
    assert set(details) >= KEYS
    assert line.unit == "%" and line.op == "<" and line.limit == metrics.LIMIT_PERCENT
    assert line.status in ("PASS", "MISS")
    assert details["metric_s"] > 0 and details["epoch_s"] > 0
    assert details["epochs"] == experiment.training["epochs"]
    assert details["ratio"] == pytest.approx(
        details["metric_s"] / (details["epochs"] * details["epoch_s"]))
    assert line.value == pytest.approx(100 * details["ratio"])
    assert details["curves_ratio"] == pytest.approx(
        details["curves_s"] / (details["epochs"] * details["epoch_s"]))
    # one timed epoch over 66 images, 3 steps of 32 (the last of 2), scaled to 660 images, 21 steps
    assert details["epoch_s"] == pytest.approx(min(details["epoch_timed_s"]) * 21 / 3)
    assert (details["n_timed"], details["n_full_train"]) == (66, 660)
    assert (details["n_images"], details["n_noise"], details["n_classes_used"]) == (6, 3, 3)
    assert details["twin"] == (twin_spec.name if twin else None)
    assert (details["label_randomisation"] is not None) == twin
    assert torch.get_num_threads() == threads
