"""ProtoPNet's offline augmentation (rotate, skew or shear, then a horizontal flip), drawn
afresh per batch on the training device."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from whitebox.augmentations.registry import register_augmentation

# ProtoPNet's offline augmentation (its img_aug.py, with Augmentor): three pipelines, each
# followed by a horizontal flip with p = 0.5.
ROTATE, SKEW, SHEAR = 0, 1, 2
MAX_ROTATION = 15.0  # degrees, p.rotate(max_left_rotation=15, max_right_rotation=15)
SKEW_MAGNITUDE = 0.2  # p.skew(magnitude=0.2): a side moves by up to 0.2 of the longer side
MAX_SHEAR = 10.0  # degrees, p.shear(max_shear_left=10, max_shear_right=10)
# Augmentor's skew_type "RANDOM": TILT, TILT_LEFT_RIGHT, TILT_TOP_BOTTOM or CORNER, each with
# p = 1/4, then a direction. Rows: which corners (top-left, top-right, bottom-right,
# bottom-left) move outwards by the skew amount, as (dx, dy) per corner; the four tilts first
# (left, right, forward, backward: 3/16 each), then the eight single-corner skews (1/32 each).
_SKEW_MOVES = torch.tensor([
    [[0, -1], [0, 0], [0, 0], [0, 1]],
    [[0, 0], [0, -1], [0, 1], [0, 0]],
    [[-1, 0], [1, 0], [0, 0], [0, 0]],
    [[0, 0], [0, 0], [1, 0], [-1, 0]],
    [[-1, 0], [0, 0], [0, 0], [0, 0]],
    [[0, -1], [0, 0], [0, 0], [0, 0]],
    [[0, 0], [1, 0], [0, 0], [0, 0]],
    [[0, 0], [0, -1], [0, 0], [0, 0]],
    [[0, 0], [0, 0], [1, 0], [0, 0]],
    [[0, 0], [0, 0], [0, 1], [0, 0]],
    [[0, 0], [0, 0], [0, 0], [-1, 0]],
    [[0, 0], [0, 0], [0, 0], [0, 1]],
], dtype=torch.float64)
_SKEW_PROBABILITIES = torch.tensor([3 / 16] * 4 + [1 / 32] * 8, dtype=torch.float64)


@register_augmentation("protopnet")
def protopnet(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """ProtoPNet's offline augmentation, drawn afresh for each batch.

    ProtoPNet (its img_aug.py, with Augmentor) writes 30 copies of every training image before
    training: 10 from each of three pipelines, rotate (up to +-15 degrees), skew (perspective,
    magnitude 0.2) and shear (up to +-10 degrees), each followed by a horizontal flip with
    p = 0.5; it then trains on the copies. Here every image of a batch picks one of the three
    pipelines uniformly, draws that pipeline's parameter, then flips with p = 0.5: a fresh draw
    each step samples the same distribution as an image drawn from the offline set, without
    storing 30 copies (an epoch here sees each image once, theirs 30 times).

    As in Augmentor, no pipeline leaves empty corners: the rotation zooms in on the largest
    rectangle of the image's aspect ratio inside the rotated image, the shear (along x or y,
    p = 1/2 each) on the largest one inside the sheared image (Augmentor crops these and
    resizes them back), and the skew moves one or two corners of the output outwards by up to
    0.2 of the longer side (one of Augmentor's 12 skews, with its probabilities), so that
    every output pixel samples the image. Left out: Augmentor draws whole degrees with small
    quirks (here angles are uniform reals) and resamples bicubically (here bilinearly, which
    cannot overshoot [0, 1]).

    Border: ``padding_mode="border"``. Nothing samples outside the image but the half-pixel
    rim beyond the outer pixel centres, where zero padding (the convention of ``translate``,
    ``whitebox.augmentations.basic``) would blend the edge pixels with black; border padding
    repeats them, so a constant image stays constant (augmentation runs on [0, 1] images,
    before the model's normalisation).

    Warp, flip and all of the batch are one ``F.grid_sample`` through a per-image homography
    (rotation and shear are its affine special case); the output is channels_last.
    """
    n, _, h, w = images.shape
    _, matrices = protopnet_parameters(n, h, w, generator)
    return warp(images, matrices)


def protopnet_parameters(n: int, h: int, w: int, generator: torch.Generator
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the pipeline drawn (ROTATE, SKEW or SHEAR) and the ``(n, 3, 3)`` homographies
    (float64, CPU) from output to input coordinates, the horizontal flip folded in.

    Coordinates are pixels from the image centre, x to the right and y down; the image spans
    ``[-w/2, w/2] x [-h/2, h/2]``. Every parameter is drawn for every image (from
    ``generator``, in a fixed order), and each image uses those of its pipeline.
    """
    kinds = torch.randint(0, 3, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5
    rotation = torch.deg2rad((torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1)
                             * MAX_ROTATION)
    shear = torch.tan(torch.deg2rad((torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1)
                                    * MAX_SHEAR))
    shear_along_x = torch.rand(n, generator=generator) < 0.5
    skews = torch.multinomial(_SKEW_PROBABILITIES, n, replacement=True, generator=generator)
    skew_amount = torch.randint(1, math.ceil(max(w, h) * SKEW_MAGNITUDE) + 1, (n,),
                                generator=generator).double()

    eye = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
    cos, sin = rotation.cos(), rotation.sin()
    zoom = cos + sin.abs() * max(h / w, w / h)  # the largest same-aspect rectangle inside
    rotate = eye.clone()
    rotate[:, 0, 0], rotate[:, 0, 1] = cos / zoom, -sin / zoom
    rotate[:, 1, 0], rotate[:, 1, 1] = sin / zoom, cos / zoom
    # x' = x + t y (along x) or y' = y + t x (along y), after a zoom along that axis to the
    # largest rectangle inside the sheared image: (w - |t| h) / w or (h - |t| w) / h.
    sheared = eye.clone()
    sheared[:, 0, 0] = torch.where(shear_along_x, (w - shear.abs() * h) / w, 1.0)
    sheared[:, 0, 1] = torch.where(shear_along_x, shear, 0.0)
    sheared[:, 1, 0] = torch.where(shear_along_x, 0.0, shear)
    sheared[:, 1, 1] = torch.where(shear_along_x, 1.0, (h - shear.abs() * w) / h)
    corners = torch.tensor([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]],
                           dtype=torch.float64)
    moved = corners + _SKEW_MOVES[skews] * skew_amount.view(n, 1, 1)
    skew = homography(moved, corners.expand(n, 4, 2))  # moved corners sample the image's

    matrices = torch.where((kinds == ROTATE).view(n, 1, 1), rotate,
                           torch.where((kinds == SKEW).view(n, 1, 1), skew, sheared))
    mirror = eye.clone()
    mirror[:, 0, 0] = torch.where(flips, -1.0, 1.0)  # flip after the warp: mirror its output
    return kinds, matrices @ mirror


def homography(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The ``(n, 3, 3)`` homographies that map the four points ``source[i]`` (``(n, 4, 2)``)
    onto ``target[i]``, normalised to a 1 in the corner (one batched 8x8 solve)."""
    x, y = source.unbind(-1)
    u, v = target.unbind(-1)
    zero, one = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = torch.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    system = torch.cat([rows_u, rows_v], 1)  # (n, 8, 8)
    solution = torch.linalg.solve(system, torch.cat([u, v], 1))
    return torch.cat([solution, torch.ones_like(solution[:, :1])], 1).view(-1, 3, 3)


def warp(images: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """Resample each image through its homography from output to input pixel coordinates
    (centred, as in :func:`protopnet_parameters`): bilinear, edge pixels repeated outside
    (see :func:`protopnet`), channels_last."""
    n, _, h, w = images.shape
    ys = (torch.arange(h, device=images.device, dtype=torch.float32) + 0.5 - h / 2).view(1, h, 1)
    xs = (torch.arange(w, device=images.device, dtype=torch.float32) + 0.5 - w / 2).view(1, 1, w)
    m = matrices.to(device=images.device, dtype=torch.float32).view(n, 9, 1, 1).unbind(1)
    depth = m[6] * xs + m[7] * ys + m[8]  # pixel centres (broadcast, no (n, h*w, 3) product)
    grid_x = (m[0] * xs + m[1] * ys + m[2]) / depth * (2 / w)  # to grid_sample's [-1, 1]
    grid_y = (m[3] * xs + m[4] * ys + m[5]) / depth * (2 / h)
    grid = torch.stack([grid_x, grid_y], -1).to(images.dtype)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.contiguous(memory_format=torch.channels_last)
