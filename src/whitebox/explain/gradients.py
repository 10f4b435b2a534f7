"""Input-space gradients of class logits, and their renormalisation to RGB for display."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def class_gradients(model: nn.Module, images: torch.Tensor,
                    classes: Sequence[int] | None = None) -> torch.Tensor:
    """d logit_c / d x for each class c of ``classes`` (default all): ``(len(classes), N, C, H, W)``.

    ``images`` are floats in [0, 1] (the model normalises internally), so gradients are
    in pixel space. The model is evaluated in eval mode (BatchNorm running statistics) and
    its training mode restored; choosing ``classes`` spares a 200-class model 200 backward
    passes. Uses ``torch.autograd.grad``, so no parameter ``.grad`` is accumulated.
    """
    was_training = model.training
    model.eval()
    try:
        inputs = images.detach().clone().requires_grad_(True)
        logits = model(inputs)
        chosen = range(logits.shape[1]) if classes is None else [int(c) for c in classes]
        gradients = []
        for c in chosen:
            (grad,) = torch.autograd.grad(logits[:, c].sum(), inputs, retain_graph=True)
            gradients.append(grad)
    finally:
        model.train(was_training)
    if not gradients:
        return images.new_zeros((0, *images.shape))
    return torch.stack(gradients)


def target_gradients(model: nn.Module, images: torch.Tensor, targets: torch.Tensor | Sequence[int]
                     ) -> torch.Tensor:
    """d logit_{targets[i]} / d x_i for each image i: ``(N, C, H, W)``, in one backward pass.

    Backpropagates ``sum_i logits[i, targets[i]]``, which gives every image the gradient of
    its own target logit because, in eval mode, images do not interact. Eval mode and
    restored training mode as in :func:`class_gradients`; no parameter ``.grad`` is touched.
    """
    was_training = model.training
    model.eval()
    try:
        inputs = images.detach().clone().requires_grad_(True)
        logits = model(inputs)
        index = torch.as_tensor(targets, dtype=torch.long, device=logits.device).view(-1, 1)
        (grad,) = torch.autograd.grad(logits.gather(1, index).sum(), inputs)
    finally:
        model.train(was_training)
    return grad


def to_display(gradients: torch.Tensor) -> torch.Tensor:
    """Min-max rescale each image's gradient to [0, 1] over all its channels and pixels.

    Works on any ``(..., C, H, W)``; a constant gradient maps to mid-grey.
    """
    flat = gradients.flatten(start_dim=-3)
    low = flat.min(dim=-1, keepdim=True).values
    high = flat.max(dim=-1, keepdim=True).values
    span = high - low
    scaled = torch.where(span > 0, (flat - low) / span.clamp_min(1e-12), torch.full_like(flat, 0.5))
    return scaled.view_as(gradients)


def to_signed_display(gradients: torch.Tensor) -> torch.Tensor:
    """Rescale each image's gradient symmetrically around zero to [0, 1]: 0.5 (grey) is a zero
    gradient, 0 and 1 are the largest magnitude of that image over all its channels and pixels.

    Works on any ``(..., C, H, W)``; an all-zero gradient is all grey.
    """
    flat = gradients.flatten(start_dim=-3)
    scale = flat.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
    return (0.5 + 0.5 * flat / scale).view_as(gradients)
