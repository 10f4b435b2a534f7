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


class GrowingLayer(nn.Module):
    """Base for layers whose parameters change shape during training (grow and prune).

    The training loop tells such a layer the labels of the batch it trains on, steps its
    ``owned_parameters()`` with the layer's own stateless ``sgd_step()`` (so a shape change
    leaves no optimiser state behind) and calls ``end_epoch()`` after every epoch.
    """

    def set_targets(self, labels) -> None:
        """Labels of the batch about to be forwarded in training (None afterwards)."""

    def owned_parameters(self) -> list[nn.Parameter]:
        """Parameters this layer steps itself; the run's optimiser leaves them alone."""
        return []

    def sgd_step(self, lr_factor: float = 1.0) -> None:
        """One update of ``owned_parameters()`` from their gradients; ``lr_factor`` is the
        run's learning-rate schedule at this step (1 = the layer's own base rate)."""

    def end_epoch(self) -> int:
        """Epoch bookkeeping (e.g. pruning); returns how many units were removed."""
        return 0

    def n_units(self) -> int:
        """Current number of units (e.g. slots)."""
        return 0


def growing_layers(model: nn.Module) -> list[GrowingLayer]:
    """Every GrowingLayer inside ``model``."""
    return [m for m in model.modules() if isinstance(m, GrowingLayer)]
