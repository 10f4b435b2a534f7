"""Incremental Neural Hashing models (log entries 11.11-30.12.2024): INH on pixels or on a backbone."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from whitebox.layers import IncrementalNeuralHashing
from whitebox.models.registry import build_model, register_model

# Layers of a registry model that form its classifier head, dropped when it serves as a backbone.
HEAD_LAYERS = ("smpool", "scale")


@register_model("inh")
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


@register_model("mlp")
def mlp(n_classes: int, in_channels: int = 1, image_size: int = 28, hidden: int = 1000) -> nn.Sequential:
    """A one-hidden-layer perceptron on pixels: the baseline of about INH's size on MNIST.

    With ``hidden`` = 1000 it has about as many weights as an INH head of 1000 slots
    (784 x 1000), so accuracy and robustness compare like for like.
    """
    in_features = in_channels * image_size * image_size
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten(1)),
        ("fc1", nn.Linear(in_features, hidden)),
        ("act1", nn.ReLU()),
        ("fc2", nn.Linear(hidden, n_classes)),
    ]))
