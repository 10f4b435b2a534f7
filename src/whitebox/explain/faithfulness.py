"""Faithfulness of a saliency map: the deletion and insertion curves of Petsiuk et al. 2018.

A saliency map is faithful when the pixels it ranks first are the ones the model's decision
rests on: deleting them first should make the true class's probability drop fast, inserting
them first (into an uninformative image) should make it rise fast. Both are compared with a
random pixel order, which a map must beat to explain anything.

Source: Petsiuk, Das and Saenko 2018, "RISE: Randomized input sampling for explanation of
black-box models" (BMVC), arXiv 1806.07421, section 4.1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def _curves(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, ranks: torch.Tensor,
            baseline: torch.Tensor, counts: torch.Tensor, batch_size: int) -> torch.Tensor:
    """True-class probabilities ``(N, 2, S)``: deletion (0) and insertion (1) of the pixels of
    rank < ``counts[s]``, at most ``batch_size`` images per forward pass."""
    n, _channels, height, width = images.shape
    steps = counts.numel()
    probabilities = []
    for start in range(0, n * 2 * steps, batch_size):
        index = torch.arange(start, min(start + batch_size, n * 2 * steps), device=images.device)
        image, curve, step = index // (2 * steps), index // steps % 2, index % steps
        chosen = ranks[image] < counts[step].unsqueeze(1)
        # Deletion: the chosen pixels become the baseline; insertion: only they are the image's.
        from_baseline = (chosen ^ curve.bool().unsqueeze(1)).view(-1, 1, height, width)
        logits = model(torch.where(from_baseline, baseline, images[image]))
        probabilities.append(logits.softmax(dim=1).gather(1, labels[image].unsqueeze(1)))
    return torch.cat(probabilities).view(n, 2, steps).to(torch.float64)


def deletion_insertion(model: nn.Module, images: torch.Tensor,
                       labels: torch.Tensor | Sequence[int], saliency: torch.Tensor, *,
                       baseline: torch.Tensor, steps: int, seed: int,
                       batch_size: int = 256) -> dict[str, float]:
    """Areas under the deletion and insertion curves, mean over images, for the order of
    ``saliency`` and for a random order.

    ``images`` ``(N, C, H, W)`` in [0, 1] with true ``labels``; ``saliency`` ``(N, H, W)``
    (e.g. :func:`~whitebox.explain.metrics.saliency_map`) ranks the pixels (all channels of
    one position) from most to least salient, ties in raster order; ``baseline`` ``(C,)`` is
    the value of a removed pixel (the data's per-channel mean). At ``steps`` >= 2 fractions
    ``f = 0, 1/(steps-1), ..., 1`` the first ``round(f H W)`` pixels of the order are
    replaced by the baseline (deletion) or are the only ones not replaced (insertion), and
    the model's softmax probability of the true class is taken. Each area is the trapezoid
    rule over the fractions reached, ``round(f H W) / (H W)``, in [0, 1].

    Returns ``deletion_auc`` (lower is more faithful), ``insertion_auc`` (higher is more
    faithful), and ``deletion_auc_random``, ``insertion_auc_random`` for a uniformly random
    order per image (drawn on the CPU with ``seed``: deterministic on every device).
    Forward passes run in eval mode without a graph, at most ``batch_size`` images each, on
    the model's device; the model's training mode is restored.
    """
    if steps < 2:
        raise ValueError("deletion_insertion needs at least 2 steps")
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else images.device
    images = images.detach().to(device)
    labels = torch.as_tensor(labels, dtype=torch.long).to(device)
    baseline = baseline.detach().to(device=device, dtype=images.dtype).view(1, -1, 1, 1)
    n, _channels, height, width = images.shape
    pixels = height * width
    counts = torch.linspace(0, 1, steps, dtype=torch.float64).mul(pixels).round().long()
    fractions = counts.to(torch.float64) / pixels
    # ranks[i, p]: when pixel p of image i comes in the order (the inverse of the order).
    order = saliency.detach().flatten(1).argsort(dim=1, descending=True, stable=True)
    salient = order.argsort(dim=1)
    generator = torch.Generator().manual_seed(seed)
    random = torch.rand(n, pixels, generator=generator).argsort(dim=1)  # a uniform permutation
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            areas = [torch.trapezoid(_curves(model, images, labels, ranks.to(device), baseline,
                                             counts.to(device), batch_size).cpu(), fractions)
                     for ranks in (salient, random)]
    finally:
        model.train(was_training)
    (deletion, insertion), (deletion_random, insertion_random) = (
        area.mean(dim=0).tolist() for area in areas)
    return {"deletion_auc": deletion, "insertion_auc": insertion,
            "deletion_auc_random": deletion_random, "insertion_auc_random": insertion_random}
