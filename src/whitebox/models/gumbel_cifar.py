"""GumbelConv stages of the log on CIFAR (22.07-02.09.2024).

* ``gumbel_simple`` (22-29.07): the "simple architectures", GumbelConv against a Conv2d baseline;
* ``gumbel2`` (12-19.08): a 10x10 patch layer under one GumbelConv;
* ``gumbel3`` (19.08-02.09): three GumbelConv layers with the generalised top-k selection.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from whitebox.layers import GumbelConv2d, Scale, SoftMaxPool
from whitebox.models.registry import register_model

CONVS = ("gumbel", "standard")


@register_model("gumbel2")
def gumbel2(n_classes: int, in_channels: int = 3, n_features: int = 120, n_units: int = 60,
            topk: int = 1, bn_affine: bool = True, logit_scale: float = 1.0) -> nn.Sequential:
    """Conv 10x10 -> MaxPool(5, pad 2, stride 10) -> BN -> GELU -> GumbelConv 3x3 -> AMP -> SoftMaxPool.

    Every 10x10 first-layer filter is an image patch; the max-pool keeps patches from
    overlapping much, and each Gumbel unit picks one such patch per position of its 3x3
    kernel (top-k with ``topk`` > 1), so a unit reads as an arrangement of patches.
    ``logit_scale`` multiplies the channel logits (see ``GumbelConv2d``): larger values let the
    choice sharpen in fewer steps, the knob the log calls non-trivial to set.
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, n_features, 10, stride=1, padding=0)),
        ("mp1", nn.MaxPool2d(5, padding=2, stride=10)),
        ("bn1", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act1", nn.GELU()),
        ("conv3", GumbelConv2d(n_features, n_units, 3, stride=1, hard=True, topk=topk,
                                logit_scale=logit_scale)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


def _check_units_per_class(n_classes: int, units_per_class: int) -> None:
    """SoftMaxPool gives each class a block of ``units_per_class`` units: both must be >= 1."""
    if n_classes < 1 or units_per_class < 1:
        raise ValueError(f"n_classes={n_classes} and units_per_class={units_per_class} must be >= 1 "
                         "(SoftMaxPool splits the units into one contiguous block per class)")


@register_model("gumbel_simple")
def gumbel_simple(n_classes: int, in_channels: int = 3, conv: str = "gumbel", mixing: bool = False,
                  n_features: int = 64, units_per_class: int = 10,
                  bn_affine: bool = True, logit_scale: float = 1.0) -> nn.Sequential:
    """Conv 5x5 -> MP -> BN -> GELU -> [1x1] -> GumbelConv 3x3 -> MP -> BN -> GELU -> [1x1] -> GumbelConv 3x3.

    The log's first GumbelConv networks (22-29.07): a free 5x5 layer reads pixels, and the two
    3x3 layers above it pick one input channel per kernel position (``conv="gumbel"``) or are
    ordinary convolutions (``conv="standard"``, the baseline the log compares against). With
    ``mixing`` a 1x1 convolution before each 3x3 layer lets it select mixtures of features
    instead of single ones. The last layer has ``units_per_class`` units per class, max-pooled
    over the image and soft-max-pooled per class. ``logit_scale`` as in ``gumbel2``.
    """
    if conv not in CONVS:
        raise ValueError(f"conv must be one of {CONVS}, got {conv!r}")
    _check_units_per_class(n_classes, units_per_class)

    def conv3x3(out_channels: int) -> nn.Module:
        if conv == "gumbel":
            return GumbelConv2d(n_features, out_channels, 3, padding=1, hard=True,
                                logit_scale=logit_scale)
        return nn.Conv2d(n_features, out_channels, 3, padding=1)

    def mix(name: str) -> list[tuple[str, nn.Module]]:
        return [(name, nn.Conv2d(n_features, n_features, 1))] if mixing else []

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, n_features, 5, padding=2)),
        ("mp1", nn.MaxPool2d(2)),
        ("bn1", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act1", nn.GELU()),
        *mix("mix1"),
        ("conv2", conv3x3(n_features)),
        ("mp2", nn.MaxPool2d(2)),
        ("bn2", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act2", nn.GELU()),
        *mix("mix2"),
        ("conv3", conv3x3(units_per_class * n_classes)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


@register_model("gumbel3")
def gumbel3(n_classes: int, in_channels: int = 3, topk: int = 1, n_features: int = 96,
            units_per_class: int = 30, bn_affine: bool = True,
            logit_scale: float = 1.0) -> nn.Sequential:
    """Conv 5x5 then three GumbelConv 3x3 blocks (MaxPool 3/2 -> BN -> GELU between them) -> AMP.

    The log's deeper GumbelConv network (19.08-02.09): every unit of conv2-conv4 selects
    ``topk`` input channels per kernel position (the generalised top-k Gumbel-softmax), so
    each layer reads as arrangements of the features below it. The overlapping max-pools
    (3, stride 2, padding 1) halve the map 32 -> 16 -> 8 -> 4; conv4 (no padding) leaves 2x2.
    ``logit_scale`` as in ``gumbel2``.
    """
    _check_units_per_class(n_classes, units_per_class)

    def gumbel(out_channels: int, padding: int) -> GumbelConv2d:
        return GumbelConv2d(n_features, out_channels, 3, padding=padding, hard=True, topk=topk,
                            logit_scale=logit_scale)

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, n_features, 5, padding=2)),
        ("mp1", nn.MaxPool2d(3, stride=2, padding=1)),
        ("bn1", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act1", nn.GELU()),
        ("conv2", gumbel(n_features, padding=1)),
        ("mp2", nn.MaxPool2d(3, stride=2, padding=1)),
        ("bn2", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act2", nn.GELU()),
        ("conv3", gumbel(n_features, padding=1)),
        ("mp3", nn.MaxPool2d(3, stride=2, padding=1)),
        ("bn3", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act3", nn.GELU()),
        ("conv4", gumbel(units_per_class * n_classes, padding=0)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))
