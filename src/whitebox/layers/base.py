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


class Phased(nn.Module):
    """Base for models trained in phases that revisit the training set between epochs
    (ProtoPNet: warm-up with a frozen backbone, joint training, prototype push, last layer).

    The training loop, for every Phased module of the model:
    - builds the optimiser from ``parameter_groups()`` when it returns groups (each a dict
      with ``params`` and an ``lr_scale`` multiplying the run's learning rate);
    - calls ``start_epoch(epoch, epochs)`` before each epoch (0-based), e.g. to set
      ``requires_grad`` so that only this phase's parameters train;
    - adds ``auxiliary_loss(labels)`` (terms computed from the last forward, e.g. cluster and
      separation costs) to the cross-entropy of every training batch;
    - after each epoch runs ``data_passes(epoch, epochs)`` passes over the training split in
      eval mode without gradients and without augmentation, images in their stored order:
      ``begin_pass(i)``, then per batch ``set_targets(labels)`` and a forward pass of the whole
      model, then ``end_pass(i)`` (e.g. pass 0 pushes prototypes, pass 1 refits the last layer).

    All phase decisions follow from the epoch number, so resuming from a checkpoint is exact.
    """

    def parameter_groups(self) -> list[dict] | None:
        """Optimiser groups ``[{"params": [...], "lr_scale": s}, ...]`` or None for one group."""
        return None

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Prepare epoch ``epoch`` (0-based) of ``epochs``."""

    def auxiliary_loss(self, labels):
        """Extra loss terms of the last training forward pass (a scalar tensor), or None."""
        return None

    def data_passes(self, epoch: int, epochs: int) -> int:
        """How many passes over the training split to run after epoch ``epoch`` (0-based)."""
        return 0

    def begin_pass(self, index: int) -> None:
        """Pass ``index`` over the training split starts."""

    def set_targets(self, labels) -> None:
        """Labels of the batch about to be forwarded in a pass (None afterwards)."""

    def end_pass(self, index: int) -> None:
        """Pass ``index`` is complete (every training image was forwarded once)."""


def phased_modules(model: nn.Module) -> list[Phased]:
    """Every Phased module inside ``model``."""
    return [m for m in model.modules() if isinstance(m, Phased)]
