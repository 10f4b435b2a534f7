"""Positive-convolution stages of the log on CIFAR (09.09-14.10.2024).

* ``positive_lenet`` (09.09-): a LeNet whose convolutions above the pixel layer have weights >= 0,
  with the representation normalisations of the log (BN, IterNorm, DBN, percentile);
* ``positive_vgg4``: the same constraint in a four-layer VGG-style network;
* ``parallel_copies`` / ``parallel_scales`` (30.09-07.10): the parallel designs, N copies of the
  LeNet under a SoftMaxPool, or one branch per kernel size, each at about the LeNet's parameter count.

Only layers that read features are positive: conv1 reads normalised pixels, which have both signs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

import torch
from torch import nn

from whitebox.layers import (
    DecorrelatedBatchNorm,
    IterNorm,
    Parallel,
    PercentileNorm,
    PositiveConv2d,
    Scale,
    SoftMaxPool,
)
from whitebox.models.registry import register_model

REPRESENTATION_NORMS = ("bn", "iternorm", "dbn", "percentile", "iternorm_percentile")


def check_units(n_units: int, n_groups: int, what: str = "n_classes") -> None:
    """SoftMaxPool splits the units into contiguous per-class blocks: they must divide evenly."""
    if n_groups < 1 or n_units < 1 or n_units % n_groups:
        raise ValueError(f"n_units={n_units} must be a positive multiple of {what}={n_groups} "
                         "(SoftMaxPool gives each class a contiguous block of units)")


def _check_widths(widths: Sequence[int], n: int) -> None:
    if len(widths) != n:
        raise ValueError(f"widths must give {n} layer widths, got {tuple(widths)}")


def _conv(positive: bool, *args, **kwargs) -> nn.Module:
    """PositiveConv2d, or the free nn.Conv2d it replaces when ``positive`` is False."""
    return PositiveConv2d(*args, **kwargs) if positive else nn.Conv2d(*args, **kwargs)


def lenet_trunk(in_channels: int, widths: Sequence[int], n_units: int, positive: bool,
                bn_affine: bool, conv2: Callable[[int, int, int], nn.Module] | None = None,
                ) -> list[tuple[str, nn.Module]]:
    """Named layers of the LeNet trunk: 32x32 -> conv 5 -> 28 -> MP -> 14 -> conv 5 -> 10 -> MP -> 5
    -> conv 5 -> 1x1, flattened to ``(N, n_units)`` representation units.

    ``conv2(in, out, kernel_size)`` builds the part layer instead of the default convolution
    (called in layer order, so a seed gives the same initial weights to the layers around it)."""
    _check_widths(widths, 2)
    return [
        ("conv1", nn.Conv2d(in_channels, widths[0], 5)),
        ("mp1", nn.MaxPool2d(2)),
        ("bn1", nn.BatchNorm2d(widths[0], affine=bn_affine)),
        ("act1", nn.GELU()),
        ("conv2", conv2(widths[0], widths[1], 5) if conv2 else _conv(positive, widths[0], widths[1], 5)),
        ("mp2", nn.MaxPool2d(2)),
        ("bn2", nn.BatchNorm2d(widths[1], affine=bn_affine)),
        ("act2", nn.GELU()),
        ("conv3", _conv(positive, widths[1], n_units, 5)),
        ("flatten", nn.Flatten(1)),
    ]


def _representation_norm(name: str, n_units: int, bn_affine: bool, group_size: int,
                         percent: float) -> nn.Module:
    """The normalisation of the representation units named ``name`` (see REPRESENTATION_NORMS).

    Whitening (IterNorm, DBN) decorrelates the units so that no two encode the same thing;
    PercentileNorm lets each unit be positive on at most ``percent`` % of the batch.
    """
    if name == "bn":
        return nn.BatchNorm1d(n_units, affine=bn_affine)
    if name == "iternorm":
        return IterNorm(n_units, group_size=group_size)
    if name == "dbn":
        return DecorrelatedBatchNorm(n_units, group_size=group_size)
    if name == "percentile":
        return nn.Sequential(OrderedDict([
            ("bn", nn.BatchNorm1d(n_units, affine=False)),
            ("percentile", PercentileNorm(n_units, percent)),
        ]))
    if name == "iternorm_percentile":
        return nn.Sequential(OrderedDict([
            ("iternorm", IterNorm(n_units, group_size=group_size)),
            ("percentile", PercentileNorm(n_units, percent)),
        ]))
    raise ValueError(f"unknown representation_norm {name!r}; valid: {', '.join(REPRESENTATION_NORMS)}")


@register_model("positive_lenet")
def positive_lenet(n_classes: int, in_channels: int = 3, widths: Sequence[int] = (64, 128),
                   n_units: int = 120, positive: bool = True, bn_affine: bool = False,
                   representation_norm: str = "bn", norm_group_size: int = 20,
                   percent: float = 10.0) -> nn.Sequential:
    """LeNet with PositiveConv2d above the pixel layer -> norm -> SoftMaxPool over each class's units.

    Non-negative weights make the decision process "positive" (evidence only adds up), which the
    log found to align input gradients with the image, also on noise; ``positive=False`` is the
    free-weight baseline. BatchNorm without affine (``bn_affine=False``) keeps a learnt negative
    scale from undoing the constraint. ``representation_norm`` picks the normalisation of the
    ``n_units`` representation units (REPRESENTATION_NORMS; whitening groups of
    ``norm_group_size`` units, PercentileNorm at ``percent`` %).
    """
    check_units(n_units, n_classes)
    return nn.Sequential(OrderedDict([
        *lenet_trunk(in_channels, widths, n_units, positive, bn_affine),
        ("norm", _representation_norm(representation_norm, n_units, bn_affine, norm_group_size,
                                      percent)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


@register_model("positive_vgg4")
def positive_vgg4(n_classes: int, in_channels: int = 3, widths: Sequence[int] = (64, 128, 128),
                  n_units: int = 120, bn_affine: bool = False) -> nn.Sequential:
    """Four 3x3 convolutions (conv2-conv4 positive), BN -> GELU -> MP between them, then AMP.

    The positive constraint in a deeper VGG-style network: 32 -> 16 -> 8 -> 4 after the three
    max-pools; conv4 gives ``n_units`` maps whose maxima over the image are the representation.
    """
    _check_widths(widths, 3)
    check_units(n_units, n_classes)
    w0, w1, w2 = widths
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, w0, 3, padding=1)),
        ("bn1", nn.BatchNorm2d(w0, affine=bn_affine)),
        ("act1", nn.GELU()),
        ("mp1", nn.MaxPool2d(2)),
        ("conv2", PositiveConv2d(w0, w1, 3, padding=1)),
        ("bn2", nn.BatchNorm2d(w1, affine=bn_affine)),
        ("act2", nn.GELU()),
        ("mp2", nn.MaxPool2d(2)),
        ("conv3", PositiveConv2d(w1, w2, 3, padding=1)),
        ("bn3", nn.BatchNorm2d(w2, affine=bn_affine)),
        ("act3", nn.GELU()),
        ("mp3", nn.MaxPool2d(2)),
        ("conv4", PositiveConv2d(w2, n_units, 3, padding=1)),
        ("amp1", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("norm", nn.BatchNorm1d(n_units, affine=bn_affine)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


@register_model("parallel_copies")
def parallel_copies(n_classes: int, in_channels: int = 3, n_copies: int = 3,
                    widths: Sequence[int] = (32, 48), n_units: int = 120, bn_affine: bool = False,
                    temperature: float = 1.0) -> nn.Sequential:
    """SoftMaxPool over ``n_copies`` independently initialised positive LeNets -> norm -> SoftMaxPool.

    The log's extreme parallel design: each representation unit is the soft maximum of the same
    unit over the copies (a disjunction: "this copy's version or that one's"). Narrower trunks
    keep the parameter count near one ``positive_lenet``'s.
    """
    check_units(n_units, n_classes)

    def trunk() -> nn.Sequential:
        return nn.Sequential(OrderedDict(lenet_trunk(in_channels, widths, n_units, True, bn_affine)))

    return nn.Sequential(OrderedDict([
        ("copies", Parallel(trunk, n=n_copies, combine="softmaxpool", temperature=temperature)),
        ("norm", nn.BatchNorm1d(n_units, affine=bn_affine)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))


class InterleaveBranches(nn.Module):
    """Reorder concatenated branch outputs so that every class's block holds units of every branch.

    The input is ``n_branches`` concatenated outputs, each split into ``n_groups`` contiguous
    per-class blocks of k units: ``(N, branches * groups * k)`` indexed ``[branch, group, unit]``.
    The output is indexed ``[group, branch, unit]``, so SoftMaxPool's contiguous block of class c
    holds the k units of c from branch 0, then from branch 1, and so on.
    """

    def __init__(self, n_branches: int, n_groups: int) -> None:
        super().__init__()
        self.n_branches = n_branches
        self.n_groups = n_groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] % (self.n_branches * self.n_groups):
            raise ValueError(f"expected (N, {self.n_branches} * {self.n_groups} * k), "
                             f"got shape {tuple(x.shape)}")
        blocks = x.reshape(x.shape[0], self.n_branches, self.n_groups, -1)
        return blocks.transpose(1, 2).reshape(x.shape[0], -1)

    def extra_repr(self) -> str:
        return f"n_branches={self.n_branches}, n_groups={self.n_groups}"


@register_model("parallel_scales")
def parallel_scales(n_classes: int, in_channels: int = 3, kernel_sizes: Sequence[int] = (3, 5, 7),
                    widths: Sequence[int] = (64, 64), n_units: int = 90,
                    bn_affine: bool = False) -> nn.Sequential:
    """Shared conv 5x5 -> one positive branch per kernel size, concatenated -> norm -> SoftMaxPool.

    The log's multi-scale parallel layer: on the shared 14x14 map each branch reads parts at its
    own scale (``PositiveConv2d`` k x k, same padding), pools to 7x7 and a 7x7 positive convolution
    gives ``n_units / len(kernel_sizes)`` units. The units are interleaved so each class's
    SoftMaxPool block holds units of every scale; hence ``n_units`` must be a multiple of
    ``len(kernel_sizes) * n_classes`` (the default 90 serves 2, 3, 5 and 10 classes).
    """
    _check_widths(widths, 2)
    n_branches = len(kernel_sizes)
    if n_branches < 1:
        raise ValueError("kernel_sizes must name at least one kernel size")
    check_units(n_units, n_branches * n_classes, what="len(kernel_sizes) * n_classes")
    w0, w1 = widths
    branch_units = n_units // n_branches

    def branch(k: int) -> nn.Sequential:
        return nn.Sequential(OrderedDict([
            ("conv2", PositiveConv2d(w0, w1, k, padding=k // 2)),
            ("mp2", nn.MaxPool2d(2)),
            ("bn2", nn.BatchNorm2d(w1, affine=bn_affine)),
            ("act2", nn.GELU()),
            ("conv3", PositiveConv2d(w1, branch_units, 7)),
            ("flatten", nn.Flatten(1)),
        ]))

    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, w0, 5)),
        ("mp1", nn.MaxPool2d(2)),
        ("bn1", nn.BatchNorm2d(w0, affine=bn_affine)),
        ("act1", nn.GELU()),
        ("scales", Parallel([branch(k) for k in kernel_sizes], combine="concat")),
        ("interleave", InterleaveBranches(n_branches, n_classes)),
        ("norm", nn.BatchNorm1d(n_units, affine=bn_affine)),
        ("smpool", SoftMaxPool(n_classes)),
        ("scale", Scale()),
    ]))
