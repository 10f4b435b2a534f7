"""Invariance by taking the maximum over variants: of the input (AugMax) or of a kernel (warped convs).

* ``AugMax`` (log 14-21.10.2024 and 21-28.10.2024): "augment the inputs and then take maximum match
  across all augmentations of the particular input"; the log's set is small rotations (0, +-15 degrees)
  followed by an optional horizontal flip.
* ``WarpedConv2d`` and its subclasses ``ScaleConv2d`` and ``PerspectiveConv2d`` (log 02-16.09.2024,
  "semantic features"): a convolution whose kernel is max-pooled over a few warped copies of itself, so
  a unit matches an object part at a few scales or seen from slightly different viewpoints. The log
  found "no substantial boost neither in interpretability nor in the accuracy".

All of them run the variants as one batch (or one convolution with the views stacked as channels),
never a Python loop over images or views.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from kornia.geometry.transform import rotate, warp_perspective
from torch import nn

from whitebox.layers.base import Regularized
from whitebox.layers.positive import positive_uniform_


def init_kernel_(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int, positive: bool,
                 weight_bound: float | None = None) -> None:
    """Conv2d's default init in place: weight ``U(-b, b)`` (``|U(-b, b)|`` if ``positive``) and bias
    ``U(-b, b)`` with ``b = 1/sqrt(fan_in)``; ``weight_bound`` overrides the weight's bound only."""
    bound = 1.0 / math.sqrt(fan_in)
    weight_bound = bound if weight_bound is None else weight_bound
    with torch.no_grad():
        if positive:
            positive_uniform_(weight, weight_bound)
        else:
            weight.uniform_(-weight_bound, weight_bound)
        if bias is not None:
            bias.uniform_(-bound, bound)


def centred(homographies: torch.Tensor, center: float) -> torch.Tensor:
    """``T(c) @ H @ T(-c)``: homographies about the point ``(c, c)`` instead of the origin (pixels)."""
    shift = torch.eye(3, dtype=homographies.dtype, device=homographies.device)
    to_centre, from_centre = shift.clone(), shift.clone()
    to_centre[:2, 2] = center
    from_centre[:2, 2] = -center
    return to_centre @ homographies @ from_centre


def conv_max_over_views(x: torch.Tensor, views: torch.Tensor, bias: torch.Tensor | None,
                        stride: int, padding: int | str) -> torch.Tensor:
    """Convolve with every view of the kernels ``(V, out, in, k, k)`` in one ``F.conv2d`` (the views
    stacked as ``V * out`` output channels) and keep, per output channel and position, the best view;
    the bias is added after the maximum."""
    n_views, out_channels = views.shape[:2]
    out = F.conv2d(x, views.reshape(n_views * out_channels, *views.shape[2:]), stride=stride,
                   padding=padding)
    out = out.unflatten(1, (n_views, out_channels)).amax(dim=1)
    return out if bias is None else out + bias.view(1, -1, 1, 1).to(out.dtype)


def _signed(value: float) -> str:
    return f"{value:+g}"


# --- AugMax ----------------------------------------------------------------------------------------

class AugMax(nn.Module):
    """``max_k module(augment_k(x))``: the module's output maximised, per output unit, over copies of x.

    The copies are every angle of ``angles`` (degrees, counter-clockwise, about the image centre,
    bilinear, zero padding; kornia ``rotate``) without and, if ``hflip``, with a horizontal flip applied
    after the rotation. Copy 0 is the identity (angle 0 must be among ``angles``; it is moved first),
    then the other angles in the given order, then the flipped ones in the same order.

    All ``n_copies`` copies go through ``module`` as one batch of ``n_copies * N`` images, so a
    BatchNorm inside ``module`` in train mode takes its statistics over all copies together. With the
    identity alone the layer is ``module`` itself.
    """

    angles: torch.Tensor

    def __init__(self, module: nn.Module, angles: tuple[float, ...] | list[float] = (0.0,),
                 hflip: bool = False) -> None:
        super().__init__()
        angles = [float(a) for a in angles]
        if 0.0 not in angles:
            raise ValueError(f"angles must contain 0 (the identity copy), got {angles}")
        if len(set(angles)) != len(angles):
            raise ValueError(f"angles must be distinct, got {angles}")
        angles = [0.0] + [a for a in angles if a != 0.0]
        self.module = module
        self.hflip = bool(hflip)
        self.register_buffer("angles", torch.tensor(angles), persistent=False)

    @property
    def n_copies(self) -> int:
        return len(self.angles) * (2 if self.hflip else 1)

    def copy_names(self) -> list[str]:
        """One name per copy, in batch order: "identity", "rot+15", ..., "hflip", "hflip rot+15", ..."""
        rotations = ["identity"] + [f"rot{_signed(a)}" for a in self.angles[1:].tolist()]
        if not self.hflip:
            return rotations
        return rotations + ["hflip"] + [f"hflip {name}" for name in rotations[1:]]

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The ``n_copies * N`` images ``(K*N, C, H, W)``, copy-major (copy k is rows k*N..(k+1)*N)."""
        n = x.shape[0]
        copies = [x]
        if len(self.angles) > 1:
            others = self.angles[1:].to(dtype=x.dtype)
            repeated = x.unsqueeze(0).expand(len(others), *x.shape).reshape(-1, *x.shape[1:])
            copies.append(rotate(repeated, others.repeat_interleave(n), mode="bilinear",
                                 padding_mode="zeros", align_corners=True))
        batch = torch.cat(copies) if len(copies) > 1 else x
        if self.hflip:
            batch = torch.cat([batch, batch.flip(-1)])
        if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_copies == 1:
            return self.module(x)
        out = self.module(self.augment(x))
        return out.unflatten(0, (self.n_copies, x.shape[0])).amax(dim=0)

    def extra_repr(self) -> str:
        return f"angles={tuple(self.angles.tolist())}, hflip={self.hflip}, n_copies={self.n_copies}"


# --- warped-kernel convolutions ----------------------------------------------------------------

class WarpedConv2d(Regularized):
    """A convolution maximised over warped views of its kernel (the log's "semantic features").

    Subclasses give ``homographies()``: ``(V, 3, 3)`` (shared by all output channels) or
    ``(out, V, 3, 3)`` (one per output channel), in kernel pixel coordinates and already about the
    kernel centre (``centred``). ``kernel_views()`` warps the kernel with kornia ``warp_perspective``
    (bilinear, zero padding, align_corners=True; differentiable in the weight and the homographies);
    ``forward`` runs one ``F.conv2d`` with the V views stacked as ``V * out`` output channels and takes
    the maximum over the views (plus the bias, shared by the views).

    ``positive=True`` initialises the weight like ``PositiveConv2d`` (``|U(-b, b)|``) and clamps it to
    >= 0 in ``regularize_weights`` (a warp of a non-negative kernel is non-negative).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int | str = 0, bias: bool = True, positive: bool = False) -> None:
        super().__init__()
        if kernel_size < 2:
            raise ValueError(f"kernel_size must be >= 2 to warp the kernel, got {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.positive = positive
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.init_weights()

    @property
    def center(self) -> float:
        """The kernel centre ``(k - 1) / 2`` in pixel coordinates (align_corners=True)."""
        return (self.kernel_size - 1) / 2

    def init_weights(self) -> None:
        """Conv2d's default bound ``1/sqrt(in * k * k)``; without the signs when ``positive``."""
        init_kernel_(self.weight, self.bias, self.in_channels * self.kernel_size ** 2, self.positive)

    def regularize_weights(self) -> None:
        if self.positive:
            with torch.no_grad():
                self.weight.clamp_(min=0.0)

    def homographies(self) -> torch.Tensor:
        raise NotImplementedError

    def view_labels(self) -> list[str]:
        raise NotImplementedError

    def warp(self, weight: torch.Tensor, homographies: torch.Tensor) -> torch.Tensor:
        """``weight (out, in, k, k)`` warped by ``(V, 3, 3)`` or ``(out, V, 3, 3)`` homographies:
        ``(V, out, in, k, k)``."""
        out, in_, k, _ = weight.shape
        homographies = homographies.to(weight.dtype)
        if homographies.dim() == 3:  # shared: one warp per view, the out * in planes as channels
            n_views = homographies.shape[0]
            src = weight.reshape(1, out * in_, k, k).expand(n_views, -1, -1, -1)
            matrices = homographies
        else:  # per output channel: batch of V * out kernels with in channels each
            n_views = homographies.shape[1]
            src = weight.unsqueeze(0).expand(n_views, -1, -1, -1, -1).reshape(n_views * out, in_, k, k)
            matrices = homographies.transpose(0, 1).reshape(n_views * out, 3, 3)
        warped = warp_perspective(src, matrices, (k, k), mode="bilinear", padding_mode="zeros",
                                  align_corners=True)
        return warped.reshape(n_views, out, in_, k, k)

    def kernel_views(self) -> torch.Tensor:
        """The warped kernels ``(V, out, in, k, k)``."""
        return self.warp(self.weight, self.homographies())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_max_over_views(x, self.kernel_views(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}, "
                f"positive={self.positive}, views={self.view_labels()}")


class ScaleConv2d(WarpedConv2d):
    """The kernel at fixed scales about its centre, ``diag(s, s, 1)`` (log 02-16.09.2024: "scale the
    convolutional kernels to encode object-part scale invariance"). Scale 1 is the kernel itself;
    scales > 1 enlarge it (its border falls off the k x k window), scales < 1 shrink it (zero border)."""

    scale_homographies: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 scales: tuple[float, ...] | list[float] = (0.8, 1.0, 1.25), stride: int = 1,
                 padding: int | str = 0, bias: bool = True, positive: bool = False) -> None:
        scales = tuple(float(s) for s in scales)
        if not scales or min(scales) <= 0:
            raise ValueError(f"scales must be positive and at least one, got {scales}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, positive)
        self.scales = scales
        matrices = torch.stack([torch.diag(torch.tensor([s, s, 1.0])) for s in scales])
        self.register_buffer("scale_homographies", centred(matrices, self.center), persistent=False)

    def homographies(self) -> torch.Tensor:
        return self.scale_homographies

    def view_labels(self) -> list[str]:
        return [f"scale {s:g}" for s in self.scales]


class PerspectiveConv2d(WarpedConv2d):
    """The kernel and ``n_views`` learnable perspective warps of it, per output channel (log
    02-16.09.2024: "learnable perspective transforms ... only the M_11 and M_12 matrix coordinates
    should be learnable as they encode the rigid 3D perspective change").

    We read the log's M_11 and M_12 as the two perspective entries of the homography's last row
    (0-based ``M[2, 0]`` and ``M[2, 1]``): ``H = [[1, 0, 0], [0, 1, 0], [p1, p2, 1]]`` about the kernel
    centre. Those two, and only those, change the viewpoint (foreshortening), and their zero is the
    identity; the other entries are affine (scale, shear, rotation, translation).

    ``perspective (out, n_views, 2)`` holds ``(p1, p2)`` in units of ``1 / c`` with ``c = (k - 1) / 2``:
    a value p along a direction changes the homogeneous scale at the kernel's edge in that direction
    to ``1 + p``, so that side is foreshortened by about ``p`` and the opposite side stretched by
    ``1 / (1 - p)``; the edge pixel moves by about ``p * c`` pixels whatever k is (0.2 px for a 5x5
    kernel at the default ``spread = 0.1``). View j starts at ``spread * (cos 2 pi j/n, sin 2 pi j/n)``:
    n directions of tilt. View 0 is always the plain kernel.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_views: int = 4,
                 spread: float = 0.1, stride: int = 1, padding: int | str = 0, bias: bool = True,
                 positive: bool = False) -> None:
        if n_views < 1:
            raise ValueError(f"n_views must be >= 1, got {n_views}")
        self.n_views = n_views
        self.spread = spread
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, bias, positive)
        self.perspective = nn.Parameter(torch.empty(out_channels, n_views, 2))
        self.init_perspective()

    def init_perspective(self) -> None:
        """View j at ``spread * (cos 2 pi j / n, sin 2 pi j / n)`` for every output channel."""
        turns = 2 * math.pi * torch.arange(self.n_views) / self.n_views
        start = self.spread * torch.stack([turns.cos(), turns.sin()], dim=-1)
        with torch.no_grad():
            self.perspective.copy_(start.expand_as(self.perspective))

    def homographies(self) -> torch.Tensor:
        """``(out, n_views + 1, 3, 3)``: the identity, then the learnable perspective warps."""
        out = self.out_channels
        eye = torch.eye(3, dtype=self.perspective.dtype, device=self.perspective.device)
        rows = torch.cat([self.perspective / self.center,
                          torch.ones_like(self.perspective[..., :1])], dim=-1)  # (out, n, 3)
        warps = torch.cat([eye[:2].expand(out, self.n_views, 2, 3), rows.unsqueeze(-2)], dim=-2)
        return torch.cat([eye.expand(out, 1, 3, 3), centred(warps, self.center)], dim=1)

    def kernel_views(self) -> torch.Tensor:
        """``(n_views + 1, out, in, k, k)``: view 0 is the weight itself (not interpolated)."""
        warped = self.warp(self.weight, self.homographies()[:, 1:])
        return torch.cat([self.weight.unsqueeze(0), warped])

    def view_labels(self) -> list[str]:
        return ["identity"] + [f"perspective {j}" for j in range(1, self.n_views + 1)]
