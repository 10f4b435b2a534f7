"""Batched augmentations of training images on the training device, registered by name
(``whitebox.augmentations.registry``): the names ``training.augment`` accepts."""

from whitebox.augmentations.registry import (
    AUGMENTATIONS,
    augment_batch,
    augmentation,
    augmentation_names,
    register_augmentation,
)

__all__ = ["AUGMENTATIONS", "augment_batch", "augmentation", "augmentation_names",
           "register_augmentation"]
