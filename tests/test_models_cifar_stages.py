"""Builders of the CIFAR stages 22.07-14.10.2024: GumbelConv, positive convolutions, parallel designs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from whitebox.layers import GumbelConv2d, Parallel, PositiveConv2d
from whitebox.models import build_model
from whitebox.models.gumbel_cifar import gumbel3, gumbel_simple
from whitebox.models.positive_cifar import (
    REPRESENTATION_NORMS,
    InterleaveBranches,
    parallel_copies,
    parallel_scales,
    positive_lenet,
    positive_vgg4,
)
from whitebox.models.prototype_cifar import conj_disj, directional

NEW_MODELS = ("gumbel_simple", "gumbel3", "positive_lenet", "positive_vgg4", "parallel_copies",
              "parallel_scales")
CASES = [(name, n) for name in NEW_MODELS for n in (2, 3)] + [("gumbel_simple", 10)]
BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.mark.parametrize("name,n_classes", CASES)
def test_logits_per_class_in_train_and_eval(name, n_classes):
    model = build_model(name, n_classes=n_classes, in_channels=3)
    x = torch.randn(4, 3, 32, 32)
    assert model.train()(x).shape == (4, n_classes)
    with torch.no_grad():
        assert model.eval()(x).shape == (4, n_classes)
    assert list(dict(model.named_children()))[-2:] == ["smpool", "scale"]


@pytest.mark.parametrize("name", NEW_MODELS)
def test_backward_reaches_every_parameter(name):
    model = build_model(name, n_classes=2, in_channels=3).train()
    model(torch.randn(4, 3, 32, 32)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", NEW_MODELS)
def test_bn_affine_false_leaves_no_batchnorm_weight(name):
    model = build_model(name, n_classes=2, in_channels=3, bn_affine=False)
    norms = [m for m in model.modules() if isinstance(m, BATCH_NORMS)]
    assert norms and all(m.weight is None and m.bias is None for m in norms)


@pytest.mark.parametrize("name", ["gumbel_simple", "gumbel3"])
def test_gumbel_builders_keep_batchnorm_affine_by_default(name):
    norms = [m for m in build_model(name, 2, 3).modules() if isinstance(m, BATCH_NORMS)]
    assert norms and all(m.weight is not None for m in norms)


def test_gumbel_simple_layers_and_baseline():
    model = gumbel_simple(n_classes=3)
    assert list(dict(model.named_children())) == [
        "conv1", "mp1", "bn1", "act1", "conv2", "mp2", "bn2", "act2", "conv3", "amp1", "flatten",
        "smpool", "scale"]
    assert isinstance(model.conv2, GumbelConv2d) and isinstance(model.conv3, GumbelConv2d)
    assert model.conv3.out_channels == 30 and model.conv2.hard
    baseline = gumbel_simple(n_classes=3, conv="standard", mixing=True)
    assert not any(isinstance(m, GumbelConv2d) for m in baseline.modules())
    assert type(baseline.conv2) is nn.Conv2d and baseline.conv3.out_channels == 30
    assert baseline.mix1.kernel_size == (1, 1) and baseline.mix2.kernel_size == (1, 1)
    assert list(dict(baseline.named_children())).index("mix2") == \
        list(dict(baseline.named_children())).index("conv3") - 1
    assert baseline(torch.randn(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(ValueError, match="conv must be one of"):
        gumbel_simple(n_classes=3, conv="dilated")
    with pytest.raises(ValueError, match="units_per_class"):
        gumbel_simple(n_classes=3, units_per_class=0)


@pytest.mark.parametrize("topk", [1, 3])
def test_gumbel3_passes_topk_to_every_gumbel_layer(topk):
    model = gumbel3(n_classes=2, topk=topk, n_features=16, units_per_class=4)
    layers = [m for m in model.modules() if isinstance(m, GumbelConv2d)]
    assert [n for n, m in model.named_children() if isinstance(m, GumbelConv2d)] == [
        "conv2", "conv3", "conv4"]
    assert all(layer.topk == topk for layer in layers)
    assert model.conv4.out_channels == 8
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 2)


def test_positive_lenet_positive_switch():
    model = positive_lenet(n_classes=2)
    assert type(model.conv1) is nn.Conv2d  # reads pixels: free weights
    assert isinstance(model.conv2, PositiveConv2d) and isinstance(model.conv3, PositiveConv2d)
    free = positive_lenet(n_classes=2, positive=False)
    assert not any(isinstance(m, PositiveConv2d) for m in free.modules())
    # conv3 maps the 5x5 map to 1x1: the representation units
    assert model[:9](torch.randn(1, 3, 32, 32)).shape == (1, 120, 1, 1)


@pytest.mark.parametrize("norm", REPRESENTATION_NORMS)
def test_every_representation_norm_trains_and_evaluates(norm):
    model = positive_lenet(n_classes=3, widths=(8, 16), representation_norm=norm).train()
    x = torch.randn(64, 3, 32, 32)
    logits = model(x)
    assert logits.shape == (64, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        assert torch.isfinite(model.eval()(x)).all()


def test_unknown_representation_norm_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: bn, iternorm, dbn, percentile, iternorm_percentile"):
        positive_lenet(n_classes=2, representation_norm="layernorm")


@pytest.mark.parametrize("builder,n_classes,kwargs", [
    (positive_lenet, 7, {}), (positive_vgg4, 7, {}), (parallel_copies, 7, {}),
    (parallel_scales, 3, {"n_units": 120}),  # 40 units per branch do not split into 3 classes
])
def test_units_must_split_into_classes(builder, n_classes, kwargs):
    with pytest.raises(ValueError, match="must be a positive multiple of"):
        builder(n_classes=n_classes, **kwargs)


def test_parallel_copies_are_independent_positive_lenets():
    model = parallel_copies(n_classes=3)
    assert isinstance(model.copies, Parallel) and model.copies.combine == "softmaxpool"
    trunks = list(model.copies.branches)
    assert len(trunks) == 3
    assert all(isinstance(t.conv2, PositiveConv2d) and isinstance(t.conv3, PositiveConv2d) for t in trunks)
    assert not torch.equal(trunks[0].conv2.weight, trunks[1].conv2.weight)


def test_parallel_scales_branches():
    model = parallel_scales(n_classes=3)
    assert isinstance(model.scales, Parallel) and model.scales.combine == "concat"
    assert [b.conv2.kernel_size for b in model.scales.branches] == [(3, 3), (5, 5), (7, 7)]
    assert all(b.conv3.out_channels == 30 for b in model.scales.branches)


@pytest.mark.parametrize("builder", [parallel_copies, parallel_scales])
def test_parallel_designs_match_lenet_parameter_count(builder):
    reference = n_parameters(positive_lenet(n_classes=3))
    assert abs(n_parameters(builder(n_classes=3)) / reference - 1) <= 0.25


def test_interleave_puts_every_branch_in_every_class_block():
    branches, classes, k = 3, 2, 2
    # unit value = 100 * branch + 10 * class + unit, as the concatenation of branch outputs lays them out
    x = torch.tensor([[100.0 * b + 10 * c + u for b in range(branches) for c in range(classes)
                       for u in range(k)]])
    out = InterleaveBranches(branches, classes)(x)
    blocks = out.reshape(classes, branches * k)
    for c in range(classes):
        assert {int(v) % 100 // 10 for v in blocks[c]} == {c}  # the block holds only class c
        assert {int(v) // 100 for v in blocks[c]} == set(range(branches))  # ... from every branch
    assert blocks[1].tolist() == [10.0, 11.0, 110.0, 111.0, 210.0, 211.0]
    with pytest.raises(ValueError):
        InterleaveBranches(branches, classes)(torch.zeros(1, 7))


@pytest.mark.parametrize("builder", [conj_disj, directional])
def test_prototype_bn_affine(builder):
    assert builder(n_classes=2).bn1.weight is not None
    assert builder(n_classes=2).bn1.weight.shape == (120,)
    assert builder(n_classes=2, bn_affine=False).bn1.weight is None


@pytest.mark.parametrize("name", ["gumbel2", "gumbel_simple", "gumbel3"])
def test_logit_scale_reaches_every_gumbel_layer(name):
    model = build_model(name, n_classes=2, in_channels=3, logit_scale=10.0)
    layers = [m for m in model.modules() if isinstance(m, GumbelConv2d)]
    assert layers and all(layer.logit_scale == 10.0 for layer in layers)
