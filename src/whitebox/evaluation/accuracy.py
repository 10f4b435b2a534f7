"""Test accuracy, overall and per class, in percent."""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Predicted class of every image; ``images`` are uint8 ``(N, C, H, W)`` on the model's device."""
    was_training = model.training
    model.eval()
    device = images.device
    predictions = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start:start + batch_size].float().div_(255)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            predictions.append(model(batch).argmax(dim=1))
    model.train(was_training)
    return torch.cat(predictions)


@torch.no_grad()
def eval_argmax(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``module(inputs).argmax(1)`` in eval mode and float32, restoring the module's mode."""
    was_training = module.training
    module.eval()
    try:
        return module(inputs).argmax(dim=1)
    finally:
        module.train(was_training)


def accuracy_report(predictions: torch.Tensor, labels: torch.Tensor,
                    classes: list[str]) -> dict:
    """``{"accuracy": %, "per_class": {class: %}}`` from predicted and true labels."""
    correct = (predictions == labels).float()
    per_class = {}
    for index, name in enumerate(classes):
        mask = labels == index
        per_class[name] = round(100.0 * correct[mask].mean().item(), 4) if mask.any() else None
    return {"accuracy": round(100.0 * correct.mean().item(), 4), "per_class": per_class}
