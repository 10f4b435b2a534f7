"""Input-space gradients of class logits, and their renormalisation to RGB for display."""

from __future__ import annotations

import torch
from torch import nn


def class_gradients(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """d logit_c / d x for every class c: ``(n_classes, N, C, H, W)``.

    ``images`` are floats in [0, 1] (the model normalises internally), so gradients are
    in pixel space. The model is evaluated in eval mode (BatchNorm running statistics).
    """
    was_training = model.training
    model.eval()
    inputs = images.detach().clone().requires_grad_(True)
    logits = model(inputs)
    gradients = []
    for c in range(logits.shape[1]):
        (grad,) = torch.autograd.grad(logits[:, c].sum(), inputs, retain_graph=True)
        gradients.append(grad)
    model.train(was_training)
    return torch.stack(gradients)


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
