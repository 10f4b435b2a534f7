"""Self-supervised colour invariance (log 02.09.2024): the object-level units of a class should
respond alike to an image and to a recoloured copy of it.

The penalty is the mean squared change of the per-class maxima of the representation units (the
input of the model's SoftMaxPool: one contiguous block of units per class) between each training
image and its copy under kornia's ``ColorJiggle`` and/or ``RandomChannelShuffle``. Both halves go
through the model in one batch, so BatchNorm sees them together and identical inputs give a
penalty of exactly zero. Random draws use torch's global generator, which the training loop
seeds per epoch, so resumed runs repeat them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.errors import ConfigError
from whitebox.layers.pooling import SoftMaxPool

COLOUR_AUGMENTATIONS = ("colour_jiggle", "channel_shuffle")


def colour_augmentation(names: list[str]) -> nn.Module:
    """The named colour augmentations in order, each applied to every image (p = 1)."""
    import kornia.augmentation as K  # here: kornia takes a second to import

    steps = []
    for name in names:
        if name == "colour_jiggle":
            steps.append(K.ColorJiggle(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=1.0))
        elif name == "channel_shuffle":
            steps.append(K.RandomChannelShuffle(p=1.0))
        else:
            raise ValueError(f"unknown colour augmentation '{name}'; "
                             f"valid: {', '.join(COLOUR_AUGMENTATIONS)}")
    return nn.Sequential(*steps)


def group_maxima(representation: torch.Tensor, n_groups: int) -> torch.Tensor:
    """``(N, n_groups * k) -> (N, n_groups)``: the maximum of each contiguous block of units."""
    return representation.reshape(representation.shape[0], n_groups, -1).amax(dim=-1)


def representation_pool(model: nn.Module) -> SoftMaxPool:
    """The model's only SoftMaxPool, whose input the penalty compares; ValueError otherwise."""
    pools = [m for m in model.modules() if isinstance(m, SoftMaxPool)]
    if len(pools) != 1:
        raise ValueError("it needs a model with exactly one SoftMaxPool "
                         f"(its input is the representation); this one has {len(pools)}")
    return pools[0]


class ColourInvariance:
    """Forward a batch with its recoloured copy; return the clean logits and the penalty.

    The model must contain exactly one SoftMaxPool (whose input is the representation).
    """

    def __init__(self, model: nn.Module, augmentations: list[str], weight: float = 1.0) -> None:
        try:
            self.pool = representation_pool(model)
        except ValueError as error:  # the one check of training.invariance
            raise ConfigError(f"config error at training/invariance: {error}") from None
        self.augment = colour_augmentation(augmentations)
        self.weight = weight

    def __call__(self, model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        captured: list[torch.Tensor] = []
        handle = self.pool.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            with torch.no_grad():
                recoloured = self.augment(images.float()).to(images.dtype)
            logits = model(torch.cat([images, recoloured]))
        finally:
            handle.remove()
        maxima = group_maxima(captured[0].float(), self.pool.n_groups)
        clean, other = maxima.chunk(2)
        return logits[: images.shape[0]], F.mse_loss(other, clean)
