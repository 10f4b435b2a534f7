"""Horizontal flips and small translations (airbench's augmentation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from whitebox.augmentations.registry import register_augmentation

MAX_SHIFT = 2  # pixels, each direction, for "translate" (as in airbench)


@register_augmentation("hflip")
def hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flip each image horizontally with p = 0.5."""
    flip = torch.rand(images.shape[0], generator=generator) < 0.5
    flip = flip.to(images.device).view(-1, 1, 1, 1)
    return torch.where(flip, images.flip(-1), images)


@register_augmentation("translate")
def translate(images: torch.Tensor, generator: torch.Generator, max_shift: int = MAX_SHIFT
              ) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], zero-filled."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).to(images.device)
    rows = torch.arange(h, device=images.device).view(1, h) + offsets[0].view(n, 1)
    cols = torch.arange(w, device=images.device).view(1, w) + offsets[1].view(n, 1)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    shifted = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return shifted.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
