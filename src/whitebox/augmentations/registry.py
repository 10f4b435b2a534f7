"""Name -> augmentation registry: the names ``training.augment`` accepts, and ``augment_batch``.

An augmentation module registers its functions itself::

    from whitebox.augmentations.registry import register_augmentation

    @register_augmentation("my_aug")
    def my_aug(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor: ...

``augment_batch`` imports, by name at run time, only the modules that register the names it
is given (found statically, ``whitebox.code_identity.registered_augmentations``). This module
imports no augmentation module, so the training loop's code identity does not cover them: a
training job's digest adds the modules of its own augmentations, and editing one retrains
only the experiments that use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch

from whitebox.code_identity import registered_augmentations
from whitebox.registration import registrar

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
AUGMENTATIONS: dict[str, Augmentation] = {}


def register_augmentation(name: str) -> Callable[[Augmentation], Augmentation]:
    """Decorator: ``augment(images, generator) -> images`` is augmentation ``name``; it takes a
    float batch ``(N, C, H, W)`` and draws its randomness from ``generator`` (CPU)."""
    return registrar(AUGMENTATIONS, "augmentation", name)


def augmentation_names() -> list[str]:
    """Valid augmentation names, in the order their modules define them."""
    return list(registered_augmentations())


def augmentation(name: str) -> Augmentation:
    """The augmentation ``name``, its module imported on first use; an unknown name raises a
    one-line ValueError listing the valid ones."""
    if name not in AUGMENTATIONS:
        modules = registered_augmentations()
        if name not in modules:
            raise ValueError(f"unknown augmentation '{name}'; valid: {', '.join(modules)}")
        importlib.import_module(modules[name])
    return AUGMENTATIONS[name]


def augment_batch(images: torch.Tensor, names: list[str], generator: torch.Generator) -> torch.Tensor:
    """Apply the named augmentations, in order, to a float batch ``(N, C, H, W)``.

    Random draws come from ``generator`` (CPU) so an epoch is reproducible from its seed.
    """
    for name in names:
        images = augmentation(name)(images, generator)
    return images
