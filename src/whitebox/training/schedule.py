"""Optimisers and learning-rate schedules named in config.yaml."""

from __future__ import annotations

import math

import torch
from torch import nn


def make_optimizer(params: list[nn.Parameter] | list[dict], name: str, lr: float,
                   weight_decay: float = 0.0, momentum: float = 0.9,
                   nesterov: bool = False) -> torch.optim.Optimizer:
    """adam | adamw | sgd over ``params`` (parameters, or torch's parameter-group dicts)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                               nesterov=nesterov)
    raise ValueError(f"unknown optimizer '{name}'; valid: adam, adamw, sgd")


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``.

    constant: 1. cosine: half a cosine from 1 to 0. onecycle: linear warm-up over the
    first 20 % of steps, then linear decay to 0 (the triangular schedule of airbench).
    """
    progress = step / max(total_steps, 1)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "onecycle":
        warmup = 0.2
        return progress / warmup if progress < warmup else (1.0 - progress) / (1.0 - warmup)
    raise ValueError(f"unknown schedule '{schedule}'; valid: constant, cosine, onecycle")
