"""GumbelConv stages of the log on CIFAR (12.08-19.08.2024)."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from whitebox.layers import GumbelConv2d, Scale, SoftMaxPool


def gumbel2(n_classes: int, in_channels: int = 3, n_features: int = 120, n_units: int = 60,
            topk: int = 1, bn_affine: bool = True) -> nn.Sequential:
    """Conv 10x10 -> MaxPool(5, pad 2, stride 10) -> BN -> GELU -> GumbelConv 3x3 -> AMP -> SoftMaxPool.

    Every 10x10 first-layer filter is an image patch; the max-pool keeps patches from
    overlapping much, and each Gumbel unit picks one such patch per position of its 3x3
    kernel (top-k with ``topk`` > 1), so a unit reads as an arrangement of patches.
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, n_features, 10, stride=1, padding=0)),
        ("mp1", nn.MaxPool2d(5, padding=2, stride=10)),
        ("bn1", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act1", nn.GELU()),
        ("conv3", GumbelConv2d(n_features, n_units, 3, stride=1, hard=True, topk=topk)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))
