"""L-infinity PGD (Madry et al. 2018): the attack of the ``attacks`` evaluation and of
adversarial training (``whitebox.training.adversarial``). Torch only, so that training's code
digest does not take in the evaluations.

Images are float in [0, 1]; eps and step sizes are in those units (0.3 = 76.5 / 255).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def pgd_linf(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, eps: float,
             steps: int = 40, step_size: float | None = None, seed: int = 0,
             batch_size: int = 500, generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial versions of float ``images`` (in [0, 1]) within the L-inf ``eps``-ball.

    Random start uniform in the ball, then ``steps`` signed-gradient ascent steps of
    ``step_size`` (default ``2.5 * eps / steps``) on the cross-entropy of the logits, each
    followed by projection onto the ball and [0, 1]. The random start is drawn for the
    whole tensor from ``generator`` (a CPU generator; default: one seeded with ``seed``), so
    the result does not depend on ``batch_size``. The model runs in eval mode (restored
    afterwards); its parameters' gradients are left untouched.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    images = images.detach().float()
    if eps == 0:
        return images.clone()
    if step_size is None:
        step_size = 2.5 * eps / steps if steps else 0.0
    generator = generator or torch.Generator().manual_seed(seed)
    start_noise = (torch.rand(images.shape, generator=generator) * 2 - 1).mul_(eps).to(images.device)
    was_training = model.training
    model.eval()
    adversarial = []
    try:
        for first in range(0, images.shape[0], batch_size):
            clean = images[first:first + batch_size]
            target = labels[first:first + batch_size]
            low, high = (clean - eps).clamp_(min=0.0), (clean + eps).clamp_(max=1.0)
            x = (clean + start_noise[first:first + batch_size]).clamp_(0.0, 1.0)
            for _ in range(steps):
                x.requires_grad_(True)
                with torch.enable_grad():
                    loss = F.cross_entropy(model(x).float(), target, reduction="sum")
                    (gradient,) = torch.autograd.grad(loss, x)
                x = torch.minimum(torch.maximum(x.detach() + step_size * gradient.sign(), low), high)
            adversarial.append(x.detach())
    finally:
        model.train(was_training)
    return torch.cat(adversarial) if adversarial else images.clone()  # (no images)
