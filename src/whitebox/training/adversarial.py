"""Adversarial training (``training.adversarial``; Madry et al. 2018): every training batch,
after augmentation, is replaced by its L-inf PGD version (``whitebox.evaluation.pgd``) before
the loss, the route to perceptually aligned input gradients of Tsipras et al. 2019 and
Santurkar et al. 2019.

The attack runs the model in eval mode, as the ``robustness`` library of those papers does:
BatchNorm normalises with its running statistics and does not update them on the attack's
passes, and random layers (Gumbel) take their eval-mode choice; the loss then sees the
attacked batch in train mode. The random start is drawn from the epoch's generator, so CPU
runs repeat bit for bit, resumed or not.
"""

from __future__ import annotations

import torch
from torch import nn

from whitebox.evaluation.pgd import pgd_linf


class AdversarialTraining:
    """L-inf PGD of ``steps`` steps of ``step_size`` (default ``2.5 * eps / steps``) in the
    ``eps``-ball (``norm`` is the schema's: only linf)."""

    def __init__(self, eps: float, steps: int, step_size: float | None = None,
                 norm: str = "linf") -> None:
        if norm != "linf":  # the schema admits only linf
            raise ValueError(f"unknown norm {norm!r}; valid: linf")
        self.eps, self.steps, self.step_size = eps, steps, step_size

    def __call__(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
        return pgd_linf(model, images, labels, self.eps, self.steps, self.step_size,
                        batch_size=images.shape[0], generator=generator)
