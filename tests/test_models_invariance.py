"""Builders of the inductive-bias stages (02.09-18.11.2024) and the colour-invariance loss."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whitebox.data import make_synthetic
from whitebox.layers import AugMax, PerspectiveConv2d, ProjectiveConv2d, ScaleConv2d
from whitebox.models import build_model
from whitebox.models.invariance_cifar import PART_CONVS
from whitebox.training import TrainSettings, fit
from whitebox.training.invariance import ColourInvariance, group_maxima

PART_LAYERS = {"scale": ScaleConv2d, "perspective": PerspectiveConv2d, "projective": ProjectiveConv2d}


def same_seed_outputs(a: str, b: str, **b_args) -> tuple[torch.Tensor, torch.Tensor]:
    """Outputs (eval mode) of two registry models built from the same seed on the same input."""
    x = torch.rand(4, 3, 32, 32)
    outputs = []
    for name, args in ((a, {}), (b, b_args)):
        torch.manual_seed(0)
        model = build_model(name, n_classes=3, in_channels=3, **args).eval()
        with torch.no_grad():
            outputs.append(model(x))
    return outputs[0], outputs[1]


@pytest.mark.parametrize("part", PART_CONVS)
def test_invariant_lenet_parts(part):
    torch.manual_seed(0)
    model = build_model("invariant_lenet", n_classes=2, in_channels=3, part=part)
    if part in PART_LAYERS:
        assert isinstance(model.conv2, PART_LAYERS[part])
    model.train()(torch.randn(4, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 2)


def test_unknown_part_names_the_valid_ones():
    with pytest.raises(ValueError, match="perspective"):
        build_model("invariant_lenet", n_classes=2, in_channels=3, part="fisheye")


def test_twins_are_the_positive_lenet_layer_for_layer():
    """The baselines of these stages are positive_lenet itself, so config reuses its runs."""
    for name, args in (("invariant_lenet", {"part": "plain"}), ("signed_lenet", {"negative": False}),
                       ("augmax_lenet", {"n_units": 120})):
        expected, got = same_seed_outputs("positive_lenet", name, **args)
        torch.testing.assert_close(got, expected)


def test_augmax_lenet_takes_the_best_slot_over_six_copies():
    model = build_model("augmax_lenet", n_classes=3, in_channels=3, angles=(0.0, 15.0, -15.0),
                        hflip=True)
    assert isinstance(model.augmax, AugMax) and model.augmax.n_copies == 6
    model.eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        slots = model.augmax(x)
        identity = model.augmax.module(x)
    assert slots.shape == (2, 180)
    assert torch.all(slots >= identity - 1e-5)  # the identity copy is among the candidates


def test_negative_branch_lowers_the_logits_by_a_softplus():
    torch.manual_seed(0)
    model = build_model("signed_lenet", n_classes=3, in_channels=3).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        features = model[:8](x)  # the shared trunk, up to act2
        positive = model.head.positive(features)
        negative = model.head.negative(features)
    torch.testing.assert_close(logits, model.scale(positive - nn.functional.softplus(negative)))


def test_group_maxima():
    x = torch.tensor([[1.0, 5.0, 2.0, 0.0, -1.0, 3.0]])
    torch.testing.assert_close(group_maxima(x, 2), torch.tensor([[5.0, 3.0]]))


def test_colour_invariance_is_zero_for_identical_inputs_and_positive_otherwise():
    torch.manual_seed(0)
    model = build_model("positive_lenet", n_classes=3, in_channels=3).train()
    images = torch.rand(8, 3, 32, 32)
    invariance = ColourInvariance(model, ["colour_jiggle", "channel_shuffle"])
    logits, penalty = invariance(model, images)
    assert logits.shape == (8, 3) and penalty.item() > 0
    invariance.augment = nn.Identity()
    _, penalty = invariance(model, images)
    assert penalty.item() == 0.0


def test_colour_invariance_needs_one_softmaxpool():
    model = build_model("signed_lenet", n_classes=3, in_channels=3)
    with pytest.raises(ValueError, match="exactly one SoftMaxPool"):
        ColourInvariance(model, ["colour_jiggle"])


def test_fit_with_colour_invariance_logs_the_penalty():
    data = make_synthetic("toy", ["a", "b", "c"], image_size=32, channels=3, train_per_class=8,
                          test_per_class=2)
    torch.manual_seed(0)
    model = build_model("positive_lenet", n_classes=3, in_channels=3)
    settings = TrainSettings(epochs=1, batch_size=12,
                             invariance={"weight": 1.0, "augmentations": ["channel_shuffle"]})
    records, _ = fit(model, data.train.images, data.train.labels, data.test.images, data.test.labels,
                     settings, seed=0)
    assert records[0].invariance_loss > 0
