"""The hook the training loop calls on every module after each optimiser step."""

from __future__ import annotations

from torch import nn


class Regularized(nn.Module):
    """Base for layers with weight constraints (e.g. weights >= 0, unit-norm slots).

    The training loop calls ``regularize_weights()`` on every such module after each
    optimiser step, so a constraint is one visible mechanism rather than scattered clamps.
    """

    def init_weights(self) -> None:
        """(Re)initialise parameters; called once after construction."""

    def regularize_weights(self) -> None:
        """Project parameters back onto their constraint set; called after every step."""


def regularize(model: nn.Module) -> None:
    """Call ``regularize_weights()`` on every Regularized module of ``model``."""
    for module in model.modules():
        if isinstance(module, Regularized):
            module.regularize_weights()
