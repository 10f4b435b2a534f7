"""PositiveConv2d: a convolution whose weights are constrained to be >= 0.

From the log (09.09-14.10.2024): restricting the convolution weights to non-negative values "considerably
boosts" the alignment of input gradients (also on Gaussian noise), at a small cost in accuracy; the
decision process becomes "positive" (no negation) and the weights sparse. Only the weights are
constrained; the bias is free.

Two ways to keep the weights >= 0 (``mode``):

* ``"projection"`` (default): a plain weight, clamped to >= 0 after every optimiser step by
  ``regularize_weights()`` (the training loop calls it via ``whitebox.layers.base.regularize``).
  Clamping sets weights exactly to zero, which gives the sparsity the log credits for the aligned
  gradients, and it is the constraint the log describes ("restraining weights ... to positive values").
  Between an optimiser step and the projection the weight may briefly be negative; the forward pass
  never sees that as long as the loop regularises after each step.
* ``"softplus"``: a reparameterisation ``weight = softplus(raw_weight)``: always > 0, independent of the
  training loop, but never exactly zero (no sparsity) and with vanishing gradients for small weights.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers.base import Regularized

Mode = Literal["projection", "softplus"]
_MIN_SOFTPLUS_WEIGHT = 1e-6


def positive_uniform_(tensor: torch.Tensor, bound: float) -> torch.Tensor:
    """Fill ``tensor`` in place with ``|U(-bound, bound)|`` (Conv2d's default draw without the signs)
    and return it; the non-negative init of every layer with weights >= 0."""
    with torch.no_grad():
        return tensor.uniform_(-bound, bound).abs_()


class PositiveConv2d(Regularized):
    """``nn.Conv2d`` with non-negative weights (see the module docstring for the two modes).

    ``weight`` is the effective (non-negative) kernel in both modes: the parameter itself for
    ``"projection"``, ``softplus(raw_weight)`` (a tensor, not a parameter) for ``"softplus"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 mode: Mode = "projection") -> None:
        super().__init__()
        if mode not in ("projection", "softplus"):
            raise ValueError(f"mode must be 'projection' or 'softplus', got {mode!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = (kh, kw)
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.mode = mode
        shape = (out_channels, in_channels // groups, kh, kw)
        name = "weight" if mode == "projection" else "raw_weight"
        self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.init_weights()

    def __getattr__(self, name: str):
        # In softplus mode ``weight`` is derived from ``raw_weight``, so code that reads
        # ``layer.weight`` (filter figures, noise gradients) sees the effective kernel in both modes.
        if name == "weight" and self.__dict__.get("mode") == "softplus":
            return F.softplus(super().__getattr__("raw_weight"))
        return super().__getattr__(name)

    def init_weights(self) -> None:
        """Non-negative init: ``|U(-b, b)|`` with Conv2d's default bound ``b = 1/sqrt(fan_in)``.

        The magnitudes match a default Conv2d's; only the signs are dropped. In softplus mode the raw
        parameter is the inverse softplus of that draw (floored at 1e-6 to stay finite).
        """
        fan_in = (self.in_channels // self.groups) * self.kernel_size[0] * self.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            weight = positive_uniform_(torch.empty_like(self._raw()), bound)
            if self.mode == "softplus":
                weight.clamp_(min=_MIN_SOFTPLUS_WEIGHT)
                weight = weight + torch.log(-torch.expm1(-weight))  # inverse of softplus
            self._raw().copy_(weight)
            if self.bias is not None:
                self.bias.uniform_(-bound, bound)

    def regularize_weights(self) -> None:
        """Projection mode: clamp the weights to >= 0 (softplus mode needs nothing)."""
        if self.mode == "projection":
            with torch.no_grad():
                self._raw().clamp_(min=0.0)

    def _raw(self) -> nn.Parameter:
        """The stored parameter: ``weight`` (projection) or ``raw_weight`` (softplus)."""
        return self._parameters["weight" if self.mode == "projection" else "raw_weight"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding,
                        dilation=self.dilation, groups=self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}, mode={self.mode!r}")
