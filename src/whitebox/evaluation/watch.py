"""Forward passes whose only purpose is to feed hooks that watch a model's layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle


@torch.no_grad()
def watch_forward(model: nn.Module, images: torch.Tensor, handles: Sequence[RemovableHandle],
                  batch_size: int = 250) -> None:
    """Pass the uint8 ``images`` ``(N, C, H, W)`` through ``model`` in eval mode, in batches,
    for the hooks behind ``handles``; the hooks are removed and the mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, images.shape[0], batch_size):
            model(images[start:start + batch_size].to(device).float().div_(255))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
