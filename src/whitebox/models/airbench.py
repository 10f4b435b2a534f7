"""A standard high-accuracy reference network on CIFAR-10, in the spirit of airbench.

Keller Jordan's airbench (2024, arXiv 2404.00498: "94 % on CIFAR-10 in 3.29 seconds"), whose
code the log adapted on 29.07.2024 when it set the goal of 94 % clean test accuracy: how far
an ordinary small CNN gets with the same training loop and gradient metrics as the log's
interpretable designs. Written here, not copied; its data-dependent whitening initialisation,
Lookahead and translated test-time copies are left out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn

from whitebox.models.registry import register_model

WHITEN_KERNEL = 2


class FlipAveraged(nn.Sequential):
    """A Sequential whose eval-mode logits average those of the image and its mirror image
    (flip test-time augmentation); in training mode it is the plain Sequential."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if self.training:
            return logits
        return 0.5 * (logits + super().forward(x.flip(-1)))


class OutputScale(nn.Module):
    """Multiply by a fixed factor (the logits' temperature, not learnt)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """conv 3x3 -> max-pool 2 -> BN -> GELU, conv 3x3 -> BN -> GELU (halves the map)."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)),
        ("pool", nn.MaxPool2d(2)),
        ("bn1", nn.BatchNorm2d(out_channels)),
        ("act1", nn.GELU()),
        ("conv2", nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)),
        ("bn2", nn.BatchNorm2d(out_channels)),
        ("act2", nn.GELU()),
    ]))


@register_model("airbench")
def airbench(n_classes: int, in_channels: int = 3, widths: Sequence[int] = (64, 256, 256),
             output_scale: float = 1 / 9, flip_tta: bool = False) -> nn.Sequential:
    """2x2 "whitening" conv -> GELU -> three conv blocks -> global max pool -> linear x scale.

    The first convolution (2x2, unpadded, 2 * in_channels * 4 outputs: twice the dimension of
    a 2x2 patch, as airbench's whitening filters) is a plain learnt one here. Each block of
    ``widths`` halves the map (32 -> 31 -> 15 -> 7 -> 3); the head is a bias-free linear layer
    whose logits are multiplied by the fixed ``output_scale``. ``flip_tta``: in eval mode the
    logits (and so the input gradients the pipeline measures) are the mean over the image and
    its mirror image.
    """
    if len(widths) != 3 or min(widths) < 1:
        raise ValueError(f"widths must give 3 positive block widths, got {tuple(widths)}")
    whiten = 2 * in_channels * WHITEN_KERNEL ** 2
    layers = [("whiten", nn.Conv2d(in_channels, whiten, WHITEN_KERNEL)), ("act0", nn.GELU())]
    for index, (width_in, width_out) in enumerate(zip((whiten, *widths[:-1]), widths, strict=True)):
        layers.append((f"block{index + 1}", conv_block(width_in, width_out)))
    layers += [
        ("pool", nn.AdaptiveMaxPool2d((1, 1))),
        ("flatten", nn.Flatten(1)),
        ("head", nn.Linear(widths[-1], n_classes, bias=False)),
        ("scale", OutputScale(output_scale)),
    ]
    return (FlipAveraged if flip_tta else nn.Sequential)(OrderedDict(layers))
