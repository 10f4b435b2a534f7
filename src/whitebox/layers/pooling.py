"""Pooling over groups of features: SoftMaxPool (differentiable disjunction), Mean, Scale."""

from __future__ import annotations

import torch
from torch import nn


class SoftMaxPool(nn.Module):
    """Soft maximum over ``n_groups`` contiguous blocks of features.

    For each block ``b`` of the input ``(N, n_groups * k)`` it returns
    ``sum_i softmax(x_b / T)_i * x_{b,i}``: the maximum as T -> 0, the mean as T -> inf.
    With one block per class it turns per-class feature scores into class logits.
    """

    def __init__(self, n_groups: int, temperature: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.n_groups = n_groups
        self.temperature = temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = _split_groups(x, self.n_groups)
        weights = torch.softmax(blocks / self.temperature, dim=-1)
        return (weights * blocks).sum(dim=-1)

    def extra_repr(self) -> str:
        return f"n_groups={self.n_groups}, temperature={self.temperature}"


class Mean(nn.Module):
    """Mean of each of ``n_groups`` contiguous blocks: ``(N, n_groups * k) -> (N, n_groups)``.

    After a max-pooled feature map, a block mean is a soft conjunction of its k features.
    """

    def __init__(self, n_groups: int) -> None:
        super().__init__()
        self.n_groups = n_groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _split_groups(x, self.n_groups).mean(dim=-1)

    def extra_repr(self) -> str:
        return f"n_groups={self.n_groups}"


class Scale(nn.Module):
    """Multiply by one learnable scalar (the logits' temperature)."""

    def __init__(self, init: float = 1.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def _split_groups(x: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Reshape ``(N, F)`` to ``(N, n_groups, F // n_groups)``; F must divide evenly."""
    if x.dim() != 2:
        raise ValueError(f"expected (N, features), got shape {tuple(x.shape)}")
    if x.shape[1] % n_groups:
        raise ValueError(f"{x.shape[1]} features do not split into {n_groups} equal groups")
    return x.reshape(x.shape[0], n_groups, x.shape[1] // n_groups)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` as the model's first layer.

    Keeping normalisation inside the model lets callers feed images in [0, 1] and take
    input gradients directly in pixel space.
    """

    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
