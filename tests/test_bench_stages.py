"""The pure helpers of benchmarks/stages.py (no timing, no torch work)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*

from benchmarks import stages  # noqa: E402

CONFIG = {
    "datasets": {"cifar10": {"source": "torchvision"},
                 "cifar2": {"subset_of": "cifar10", "classes": ["airplane", "automobile"]},
                 "cifar3": {"subset_of": "cifar10", "classes": ["airplane", "automobile", "bird"]},
                 "mnist": {"source": "torchvision"}},
    "experiments": {"directional": {"dataset": "cifar2"},
                    "gumbel2": {"dataset": "cifar2", "family": "gumbel"},
                    "conv_simple": {"dataset": "cifar10", "family": "gumbel"},
                    "norm_dbn": {"dataset": "cifar3", "family": "normalization"},
                    "mlp_mnist": {"dataset": "mnist", "family": None}},
}


def test_family_experiments_keeps_config_order_and_skips_the_rest():
    assert stages.family_experiments(CONFIG) == ["gumbel2", "conv_simple", "norm_dbn"]


@pytest.mark.parametrize(("dataset", "sizes"), [("cifar2", (2, 10_000, 2_000)),
                                                 ("cifar3", (3, 15_000, 3_000)),
                                                 ("cifar10", (10, 50_000, 10_000))])
def test_split_sizes_of_cifar_and_its_subsets(dataset, sizes):
    assert stages.split_sizes(CONFIG, dataset) == sizes


def test_split_sizes_of_an_unknown_base_is_a_key_error():
    with pytest.raises(KeyError):
        stages.split_sizes(CONFIG, "mnist")


def test_steps_skip_a_last_batch_of_one_image_as_fit_does():
    assert stages.steps(1024, 128) == 8
    assert stages.steps(1025, 128) == 8
    assert stages.steps(1026, 128) == 9
    assert stages.steps(10_000, 128) == 79


def test_per_epoch_seconds_scales_by_steps():
    assert stages.per_epoch_seconds(8.0, 1024, 10_000, 128) == pytest.approx(79.0)
    assert stages.per_epoch_seconds(2.0, 4096, 4096, 128) == 2.0


def test_paired_ratios():
    assert stages.paired_ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]
    with pytest.raises(ValueError):
        stages.paired_ratios([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        stages.paired_ratios([], [])


def test_interleave_alternates_the_order_and_times_each_call():
    calls: list[str] = []
    ticks = iter(range(100))
    times = stages.interleave({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                              repeats=3, clock=lambda: float(next(ticks)))
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert times == {"a": [1.0, 1.0, 1.0], "b": [1.0, 1.0, 1.0]}


def test_calls_for():
    assert stages.calls_for(0.001, 0.05) == 50
    assert stages.calls_for(1.0, 0.05) == 1
    assert stages.calls_for(0.0, 0.05, at_most=100) == 100


def test_other_cores_is_machine_busy_time_minus_ours_per_second():
    assert stages.other_cores(machine_busy_s=6.0, own_s=4.0, wall_s=2.0) == 1.0
    assert stages.other_cores(machine_busy_s=3.9, own_s=4.0, wall_s=2.0) == 0.0  # tick rounding
    assert stages.other_cores(1.0, 0.0, 0.0) == 0.0


def test_busy_note_only_above_the_threshold():
    assert stages.busy_note(None) == ""
    assert stages.busy_note(0.1) == ""
    assert "1.2 cores" in stages.busy_note(1.2)
