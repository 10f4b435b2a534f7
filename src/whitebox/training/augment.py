"""Batched augmentation on the training device (never per image in Python)."""

from __future__ import annotations

import torch

AUGMENTATIONS = ("hflip",)


def augment_batch(images: torch.Tensor, names: list[str], generator: torch.Generator) -> torch.Tensor:
    """Apply the named augmentations to a float batch ``(N, C, H, W)``.

    Random draws come from ``generator`` (CPU) so an epoch is reproducible from its seed.
    """
    for name in names:
        if name == "hflip":
            flip = torch.rand(images.shape[0], generator=generator) < 0.5
            flip = flip.to(images.device).view(-1, 1, 1, 1)
            images = torch.where(flip, images.flip(-1), images)
        else:
            raise ValueError(f"unknown augmentation '{name}'; valid: {', '.join(AUGMENTATIONS)}")
    return images
