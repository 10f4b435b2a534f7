"""The pure helpers of benchmarks/adversarial.py (no timing) and the twins it times."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*

import pytest  # noqa: E402

from benchmarks import adversarial  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from whitebox.config import experiment_spec, load_config  # noqa: E402


@pytest.fixture(scope="module")
def specs() -> dict:
    config = load_config(REPO / "config.yaml")
    return {name: experiment_spec(config, name) for name in config["experiments"]}


def test_robust_twins_of_config_yaml_are_the_standard_models_plus_adversarial_training(specs):
    assert adversarial.robust_twins(specs) == [("lenet_unconstrained", "lenet_unconstrained_robust"),
                                               ("mlp_mnist", "mlp_mnist_robust"),
                                               ("lenet_unconstrained_cifar10",
                                                "lenet_unconstrained_robust_cifar10")]


def test_a_twin_must_match_in_everything_but_adversarial(specs):
    standard, robust = specs["lenet_unconstrained"], specs["lenet_unconstrained_robust"]
    longer = dataclasses.replace(robust, name="longer", training={**robust.training, "epochs": 20})
    positive = dataclasses.replace(robust, name="positive", model_args={})
    others = {spec.name: spec for spec in (standard, longer, positive)}
    assert adversarial.robust_twins(others) == []
    assert adversarial.robust_twins({**others, robust.name: robust}) == [(standard.name, robust.name)]


def test_the_cost_limit_is_one_training_step_per_pgd_step():
    assert adversarial.cost_limit({"norm": "linf", "eps": 0.03, "steps": 3}) == 4.0
