"""Inductive-bias stages of the log on CIFAR (02.09-18.11.2024), all on the positive LeNet.

* ``augmax_lenet`` (14-28.10): the slots model. Each representation unit ("slot") is the best
  match over fixed augmentations of the input (flips, small rotations): AugMax around the trunk.
* ``invariant_lenet`` (02-16.09, 04-18.11): the part layer (conv2) made invariant to small
  transforms of its kernels: fixed scales, learnable perspective warps or 3D projective views.
* ``signed_lenet`` (21.10-04.11): a negative decision branch beside the positive one.

The self-supervised colour invariance (02.09) is a training loss, not a layer: see
``whitebox.training.invariance``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers import (
    AugMax,
    PerspectiveConv2d,
    PositiveConv2d,
    ProjectiveConv2d,
    Scale,
    ScaleConv2d,
    SoftMaxPool,
)
from whitebox.models.positive_cifar import check_units, lenet_trunk
from whitebox.models.registry import register_model

PART_CONVS = ("plain", "scale", "perspective", "projective")


@register_model("augmax_lenet")
def augmax_lenet(n_classes: int, in_channels: int = 3, widths: Sequence[int] = (64, 128),
                 n_units: int = 180, angles: Sequence[float] = (0.0,), hflip: bool = False,
                 bn_affine: bool = False) -> nn.Sequential:
    """Positive LeNet whose ``n_units`` slots each take their best match over augmented inputs.

    ``AugMax`` runs the trunk on every copy of the input (each angle in ``angles``, each also
    flipped if ``hflip``) in one batch and keeps, per slot, the maximum over the copies; then
    BatchNorm and SoftMaxPool over each class's block of ``n_units / n_classes`` slots. With
    ``angles=(0,)`` and no flip it is the plain positive LeNet with the same layer names, the
    log's baseline for this stage.
    """
    check_units(n_units, n_classes)
    trunk = nn.Sequential(OrderedDict(lenet_trunk(in_channels, widths, n_units, True, bn_affine)))
    return nn.Sequential(OrderedDict([
        ("augmax", AugMax(trunk, angles=tuple(angles), hflip=hflip)),
        ("norm", nn.BatchNorm1d(n_units, affine=bn_affine)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


def part_conv(kind: str, in_channels: int, out_channels: int, kernel_size: int,
              scales: Sequence[float], n_views: int, spread: float, angle: float) -> nn.Module:
    """The positive part convolution ``kind`` (see PART_CONVS); each keeps the best of its views."""
    if kind == "plain":
        return PositiveConv2d(in_channels, out_channels, kernel_size)
    if kind == "scale":
        return ScaleConv2d(in_channels, out_channels, kernel_size, scales=tuple(scales), positive=True)
    if kind == "perspective":
        return PerspectiveConv2d(in_channels, out_channels, kernel_size, n_views=n_views, spread=spread,
                                 positive=True)
    if kind == "projective":
        return ProjectiveConv2d(in_channels, out_channels, kernel_size, angle=angle, positive=True)
    raise ValueError(f"unknown part_conv {kind!r}; valid: {', '.join(PART_CONVS)}")


@register_model("invariant_lenet")
def invariant_lenet(n_classes: int, in_channels: int = 3, part: str = "plain",
                    widths: Sequence[int] = (64, 128), n_units: int = 120,
                    scales: Sequence[float] = (0.8, 1.0, 1.25), n_views: int = 4, spread: float = 0.1,
                    angle: float = 20.0, bn_affine: bool = False) -> nn.Sequential:
    """Positive LeNet whose part layer ``conv2`` is the invariant convolution ``part``.

    ``scale``: the kernel at fixed ``scales``; ``perspective``: the kernel and ``n_views``
    learnable perspective warps of it (initial spread ``spread``); ``projective``: a 3D kernel
    seen from 8 directions tilted by ``angle`` degrees. Each responds with its best view, so a
    part is recognised under those transforms. ``plain`` is the positive LeNet itself (the twin).
    """
    check_units(n_units, n_classes)
    if part not in PART_CONVS:
        raise ValueError(f"unknown part {part!r}; valid: {', '.join(PART_CONVS)}")

    def conv2(in_channels: int, out_channels: int, kernel_size: int) -> nn.Module:
        return part_conv(part, in_channels, out_channels, kernel_size, scales, n_views, spread, angle)

    return nn.Sequential(OrderedDict([
        *lenet_trunk(in_channels, widths, n_units, True, bn_affine, conv2=conv2),
        ("norm", nn.BatchNorm1d(n_units, affine=bn_affine)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


class SignedEvidence(nn.Module):
    """Class logits from positive evidence minus a soft-plus of negative evidence.

    Both branches read the same features with non-negative weights: ``positive`` scores what
    speaks for a class, ``negative`` what speaks against it, each ``(N, n_classes)``. The logit
    is ``p - softplus(n)``: the non-linearity lets strong counter-evidence veto a class while
    weak counter-evidence costs little, so the two are not simply added. Without a negative
    branch the logit is ``p``.
    """

    def __init__(self, positive: nn.Module, negative: nn.Module | None) -> None:
        super().__init__()
        self.positive = positive
        self.negative = negative

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.positive(x)
        if self.negative is not None:
            logits = logits - F.softplus(self.negative(x))
        return logits


@register_model("signed_lenet")
def signed_lenet(n_classes: int, in_channels: int = 3, negative: bool = True,
                 widths: Sequence[int] = (64, 128), n_units: int = 120,
                 bn_affine: bool = False) -> nn.Sequential:
    """Positive LeNet trunk (conv1, conv2) with a positive and an optional negative head.

    Each head is a positive 5x5 convolution to ``n_units`` units, BatchNorm and SoftMaxPool over
    each class's block: ``head.positive`` gives the evidence for each class, ``head.negative``
    (if ``negative``) the evidence against it, combined by :class:`SignedEvidence`.
    ``negative=False`` is the positive LeNet (the twin).
    """
    check_units(n_units, n_classes)
    *trunk, (_, conv3), _ = lenet_trunk(in_channels, widths, n_units, True, bn_affine)

    def head(conv: nn.Module) -> nn.Sequential:
        return nn.Sequential(OrderedDict([
            ("conv3", conv),
            ("flatten", nn.Flatten(1)),
            ("norm", nn.BatchNorm1d(n_units, affine=bn_affine)),
            ("smpool", SoftMaxPool(n_classes)),
        ]))

    positive_head = head(conv3)  # the trunk's own last layer, so negative=False is positive_lenet
    negative_head = head(PositiveConv2d(widths[1], n_units, 5)) if negative else None
    return nn.Sequential(OrderedDict([
        *trunk,
        ("head", SignedEvidence(positive_head, negative_head)),
        ("scale", Scale()),
    ]))
