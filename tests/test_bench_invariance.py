"""The pure helpers of benchmarks/invariance.py (no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks.*

from benchmarks import invariance  # noqa: E402


def test_lenet_trunk_maps_cifar_images_to_180_units_and_conv2_sees_the_timed_shape():
    torch.manual_seed(0)
    trunk = invariance.lenet_trunk().eval()
    seen = []
    trunk[4].register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        out = trunk(torch.rand(2, *invariance.IMAGE_SHAPE))
    assert out.shape == (2, 180)
    assert seen == [(2, *invariance.CONV2_SHAPE[1:])]
    assert all((conv.weight >= 0).all() for conv in (trunk[0], trunk[4], trunk[8]))


def test_augmax_variants_have_1_2_3_6_copies_identity_first():
    from whitebox.layers import AugMax

    layers = [AugMax(torch.nn.Identity(), **kwargs) for kwargs in invariance.AUGMAX_VARIANTS.values()]
    assert [layer.n_copies for layer in layers] == [1, 2, 3, 6]
    assert all(layer.copy_names()[0] == "identity" for layer in layers)


def test_warped_layers_match_conv2_and_have_a_limit_each():
    layers = {name: make() for name, make in invariance.warped_layers().items()}
    assert set(layers) == set(invariance.LAYER_LIMITS)
    views = {name: len(layer.view_labels()) for name, layer in layers.items()}
    assert views == {"ScaleConv2d": 3, "PerspectiveConv2d": 5, "ProjectiveConv2d": 8}
    for layer in layers.values():
        assert (layer.in_channels, layer.out_channels, layer.kernel_size) == (64, 128, 5)
    # Each limit allows more than one conv per view, but not much more than the expected overhead.
    for name, limit in invariance.LAYER_LIMITS.items():
        assert views[name] < limit < 2 * views[name]


def test_ratios_to_the_baseline_per_round():
    times = {"base": [1.0, 2.0], "a": [2.0, 3.0], "b": [4.0, 4.0]}
    assert invariance.ratios_to(times, "base") == {"a": [2.0, 1.5], "b": [4.0, 2.0]}
    with pytest.raises(ValueError):
        invariance.ratios_to({"base": [1.0], "a": [1.0, 2.0]}, "base")


def test_per_copy():
    assert invariance.per_copy(6.6, 6) == pytest.approx(1.1)
    assert invariance.per_copy(0.9, 1) == 0.9
    with pytest.raises(ValueError):
        invariance.per_copy(1.0, 0)


def test_per_call_divides_each_round_by_its_calls():
    times = {"a": [1.0, 2.0], "b": [0.5, 0.5]}
    assert invariance.per_call(times, {"a": 4, "b": 1}) == {"a": [0.25, 0.5], "b": [0.5, 0.5]}


def test_least_busy_keeps_the_quietest_attempt_and_counts_unknown_as_quiet():
    attempts = [(0.9, {"a": [1.0]}), (0.3, {"a": [2.0]}), (0.5, {"a": [3.0]})]
    assert invariance.least_busy(attempts) == (0.3, {"a": [2.0]})
    assert invariance.least_busy([(0.4, {"a": [1.0]}), (None, {"a": [2.0]})]) == (None, {"a": [2.0]})
