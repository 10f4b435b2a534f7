"""ProjectiveConv2d: a 3D kernel seen from 8 slightly shifted viewpoints (log 28.10-18.11.2024).

The log adds "a depth dimension to the learnable convolutional kernels, treating them as 3-dimensional
template features" and projects the 3D kernel to 2D in several ways: the volume is rotated "along the x
and y axis by a certain acute angle in 8 directions - this corresponds to shifting the viewpoint
slightly to see the sides of the object". Reported (11-18.11.2024): inconsistent results, training
8x slower, and "usually only one 2D view was relevant".
"""

from __future__ import annotations

import itertools
import math

import torch
from kornia.geometry.transform import get_projective_transform, warp_affine3d

from whitebox.layers.base import Regularized
from whitebox.layers.invariance import conv_max_over_views, init_kernel_


def view_angles(angle: float) -> list[tuple[float, float]]:
    """The 8 viewpoints ``(angle_x, angle_y) in {-a, 0, a}^2`` without ``(0, 0)``, x-major."""
    steps = (-angle, 0.0, angle)
    return [(ax, ay) for ax, ay in itertools.product(steps, steps) if (ax, ay) != (0.0, 0.0)]


def project(volume: torch.Tensor, angles_xy: torch.Tensor) -> torch.Tensor:
    """Rotate ``volume (out, in, D, k, k)`` by each of ``angles_xy (V, 2)`` (degrees about the x and y
    axes, through the volume centre) and project orthographically (sum over depth): ``(V, out, in, k, k)``.

    The rotation is kornia's ``get_projective_transform`` with the axis-angle vector ``(ax, ay, 0)``,
    i.e. about the in-plane axis ``(ax, ay)`` by ``|(ax, ay)|`` degrees (a diagonal view tilts by
    ``sqrt(2) a``), sampled with ``warp_affine3d`` (bilinear, zero padding; what leaves the D x k x k box
    is lost). ``(0, 0)`` gives ``volume.sum(2)`` up to float rounding.
    """
    out, in_, depth, kh, kw = volume.shape
    n_views = angles_xy.shape[0]
    angles = angles_xy.to(device=volume.device, dtype=torch.float32)
    rotations = torch.cat([angles, torch.zeros_like(angles[:, :1])], dim=1)  # (rx, ry, rz=0)
    center = torch.tensor([(kw - 1) / 2, (kh - 1) / 2, (depth - 1) / 2], device=volume.device)
    matrices = get_projective_transform(center.expand(n_views, 3), rotations, torch.ones_like(rotations))
    # One warp per view, with the out * in volumes as channels (shared sampling grid).
    src = volume.reshape(1, out * in_, depth, kh, kw).expand(n_views, -1, -1, -1, -1)
    rotated = warp_affine3d(src, matrices.to(volume.dtype), (depth, kh, kw), flags="bilinear",
                            padding_mode="zeros", align_corners=True)
    return rotated.sum(dim=2).reshape(n_views, out, in_, kh, kw)


def projection_operator(depth: int, kernel_size: int, angles_xy: torch.Tensor) -> torch.Tensor:
    """``project`` as a matrix ``(V, k * k, D * k * k)``: view v of a volume is ``operator[v] @ voxels``.

    Trilinear sampling is linear in the volume, so projecting the D * k * k one-voxel volumes gives
    the exact operator; with fixed angles it is computed once, and a view then costs one small matrix
    product instead of a 3D ``grid_sample`` over every (out, in) volume and its backward.
    """
    n_voxels = depth * kernel_size ** 2
    basis = torch.eye(n_voxels, device=angles_xy.device).reshape(n_voxels, 1, depth, kernel_size,
                                                                  kernel_size)
    views = project(basis, angles_xy)  # (V, n_voxels, 1, k, k): the image of each voxel
    return views.reshape(len(angles_xy), n_voxels, kernel_size ** 2).transpose(1, 2).contiguous()


class ProjectiveConv2d(Regularized):
    """A convolution maximised over 8 2D projections of a learnable 3D kernel (the log's
    ProjectiveConv2d, 04-18.11.2024).

    The 3D kernel is ``volume`` of shape ``(out, in, D, k, k)`` (``D`` defaults to k). It is stored as
    the parameter ``weight`` of shape ``(out, in * D, k, k)``, depth slices of an input channel next to
    each other, because the training loop converts models to channels_last and torch refuses that
    for 5D tensors. The views rotate the volume by ``angle`` degrees in the 8 directions of
    ``view_angles`` and sum over depth (``project``); ``forward`` runs one ``F.conv2d`` with the 8 views
    stacked as ``8 * out`` output channels and takes the maximum over the views (plus the bias). The
    views are computed with ``projection_operator`` (``project`` as one matrix, exact and cheap).

    Init: Conv2d's bound ``b = 1/sqrt(in * k * k)`` scaled so the frontal projection (a sum of D slices)
    has a Conv2d-like magnitude: slices ``U(-b/sqrt(D), b/sqrt(D))`` (zero-mean slices add up like
    ``sqrt(D)``: the projection has Conv2d's standard deviation); with ``positive``, ``|U(-b/D, b/D)|``
    (non-negative slices add up like D: the projection has PositiveConv2d's mean). ``positive`` also
    clamps the volume to >= 0 after each step, so every view is >= 0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, depth: int | None = None,
                 angle: float = 20.0, padding: int | str = 0, stride: int = 1, bias: bool = True,
                 positive: bool = False) -> None:
        super().__init__()
        depth = kernel_size if depth is None else depth
        if depth < 1 or kernel_size < 1:
            raise ValueError(f"depth and kernel_size must be >= 1, got {depth} and {kernel_size}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.depth = depth
        self.angle = float(angle)
        self.padding = padding
        self.stride = stride
        self.positive = positive
        self.weight = torch.nn.Parameter(torch.empty(out_channels, in_channels * depth, kernel_size,
                                                     kernel_size))
        self.bias = torch.nn.Parameter(torch.empty(out_channels)) if bias else None
        self.register_buffer("angles_xy", torch.tensor(view_angles(self.angle)), persistent=False)
        self.register_buffer("projection", projection_operator(depth, kernel_size, self.angles_xy),
                             persistent=False)
        self.init_weights()

    @property
    def volume(self) -> torch.Tensor:
        """The 3D kernel ``(out, in, D, k, k)`` (a view of ``weight``)."""
        return self.weight.unflatten(1, (self.in_channels, self.depth))

    def init_weights(self) -> None:
        fan_in = self.in_channels * self.kernel_size ** 2
        bound = 1.0 / math.sqrt(fan_in)
        slice_bound = bound / self.depth if self.positive else bound / math.sqrt(self.depth)
        init_kernel_(self.weight, self.bias, fan_in, self.positive, weight_bound=slice_bound)

    def regularize_weights(self) -> None:
        if self.positive:
            with torch.no_grad():
                self.weight.clamp_(min=0.0)

    def kernel_views(self) -> torch.Tensor:
        """The 8 projected kernels ``(8, out, in, k, k)``, in ``view_labels`` order: ``project`` of the
        volume, computed with the precomputed ``projection_operator``."""
        k = self.kernel_size
        voxels = self.weight.reshape(self.out_channels * self.in_channels, self.depth * k * k)
        views = torch.matmul(voxels, self.projection.to(voxels.dtype).transpose(1, 2))
        return views.reshape(len(self.projection), self.out_channels, self.in_channels, k, k)

    def view_labels(self) -> list[str]:
        return [f"x{ax:+g} y{ay:+g}" for ax, ay in self.angles_xy.tolist()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv_max_over_views(x, self.kernel_views(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"depth={self.depth}, angle={self.angle:g}, stride={self.stride}, "
                f"padding={self.padding}, bias={self.bias is not None}, positive={self.positive}")
