"""Batched augmentation on the training device (never per image in Python)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

AUGMENTATIONS = ("hflip", "translate")
MAX_SHIFT = 2  # pixels, each direction, for "translate" (as in airbench)


def augment_batch(images: torch.Tensor, names: list[str], generator: torch.Generator) -> torch.Tensor:
    """Apply the named augmentations to a float batch ``(N, C, H, W)``.

    Random draws come from ``generator`` (CPU) so an epoch is reproducible from its seed.
    """
    for name in names:
        if name == "hflip":
            flip = torch.rand(images.shape[0], generator=generator) < 0.5
            flip = flip.to(images.device).view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(-1), images)
        elif name == "translate":
            images = translate(images, MAX_SHIFT, generator)
        else:
            raise ValueError(f"unknown augmentation '{name}'; valid: {', '.join(AUGMENTATIONS)}")
    return images


def translate(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random (dy, dx) in [-max_shift, max_shift], zero-filled."""
    n, _, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator).to(images.device)
    rows = torch.arange(h, device=images.device).view(1, h) + offsets[0].view(n, 1)
    cols = torch.arange(w, device=images.device).view(1, w) + offsets[1].view(n, 1)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    shifted = padded.permute(0, 2, 3, 1)[batch, rows.view(n, h, 1), cols.view(n, 1, w)]
    return shifted.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
