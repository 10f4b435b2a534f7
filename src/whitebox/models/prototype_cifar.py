"""The first CIFAR stages of the log (29.07-05.08.2024), layer for layer as written there."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from whitebox.layers import Mean, Scale, SoftMaxPool
from whitebox.models.registry import register_model


@register_model("conj_disj")
def conj_disj(n_classes: int, in_channels: int = 3, n_features: int = 120,
              conjunction_size: int = 5, bn_affine: bool = True) -> nn.Sequential:
    """Conjunction-Disjunction: the maximal group of 5 local features present, per class.

    Each of the 120 first-layer filters is max-pooled over the image; groups of
    ``conjunction_size`` consecutive features are averaged (a soft AND of parts) and
    SoftMaxPool takes a soft OR over each class's groups. ``bn_affine=False`` drops BatchNorm's
    learnt scale and shift (the later stages' choice: no unit can be silenced or inverted by them).
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, n_features, 10, stride=2, padding=0)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("bn1", nn.BatchNorm1d(n_features, affine=bn_affine)),
        ("mean", Mean(n_features // conjunction_size)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


@register_model("directional")
def directional(n_classes: int, in_channels: int = 3, n_features: int = 120,
                bn_affine: bool = True) -> nn.Sequential:
    """Directional: a coarse MaxPool keeps rough spatial relations between detected parts.

    The second convolution (4x4 over the pooled 4x4 map of a 32x32 input) scores
    arrangements of parts; SoftMaxPool over each class's units gives the logits.
    ``bn_affine`` as in ``conj_disj``.
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, n_features, 10, stride=2, padding=0)),
        ("mp1", nn.MaxPool2d(3)),
        ("bn1", nn.BatchNorm2d(n_features, affine=bn_affine)),
        ("act1", nn.GELU()),
        ("conv2", nn.Conv2d(n_features, n_features, 4, stride=1)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))
