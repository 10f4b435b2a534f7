"""Known label errors: a seeded share of the training labels flipped to another class
(``training: flip_labels``), so that an evaluation can check what a model makes of them."""

from __future__ import annotations

import torch


def flip_labels(labels: torch.Tensor, share: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels with errors, indices of the flipped examples in ascending order)``.

    ``round(share * N)`` examples, drawn by a CPU generator seeded with ``seed``, get a
    different class drawn uniformly from the others (classes 0 .. labels.max()); the same
    labels, share and seed give the same errors on every device.
    """
    generator = torch.Generator().manual_seed(seed)
    n_classes = int(labels.max()) + 1
    if n_classes < 2:
        raise ValueError("flipping labels needs at least two classes")
    n_flipped = round(share * labels.shape[0])
    index = torch.randperm(labels.shape[0], generator=generator)[:n_flipped].sort().values
    shift = torch.randint(1, n_classes, (n_flipped,), generator=generator)
    flipped = labels.clone()
    index = index.to(labels.device)
    flipped[index] = (labels[index] + shift.to(labels.device)) % n_classes
    return flipped, index
