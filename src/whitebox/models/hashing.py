"""Incremental Neural Hashing models (log entries 11.11-30.12.2024): INH on pixels or on a backbone."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from whitebox.layers import IncrementalNeuralHashing

# Layers of a registry model that form its classifier head, dropped when it serves as a backbone.
HEAD_LAYERS = ("smpool", "scale")


def inh(n_classes: int, in_channels: int = 1, image_size: int = 28, backbone: str = "identity",
        **layer_args) -> nn.Sequential:
    """INH head on raw pixels (``backbone: identity``) or on a registry model's features.

    With a backbone, the model is built for ``n_classes`` and its head (SoftMaxPool, Scale)
    is removed, so INH sees the flattened representation it pooled. ``layer_args`` go to
    IncrementalNeuralHashing (pooling, training_thresholds, lr, ...).
    """
    if backbone == "identity":
        features: nn.Module = nn.Flatten(1)
    else:
        from whitebox.models.registry import build_model

        full = build_model(backbone, n_classes=n_classes, in_channels=in_channels)
        features = nn.Sequential(OrderedDict(
            (name, layer) for name, layer in full.named_children() if name not in HEAD_LAYERS))
    with torch.no_grad():
        was_training = features.training
        features.eval()
        in_features = features(torch.zeros(2, in_channels, image_size, image_size)).shape[1]
        features.train(was_training)
    return nn.Sequential(OrderedDict([
        ("features", features),
        ("inh", IncrementalNeuralHashing(in_features, n_classes, **layer_args)),
    ]))
