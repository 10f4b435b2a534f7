"""The one protocol by which a layer (or a model) takes part in training: ``TrainingHook``.

``whitebox.training.fit`` finds every TrainingHook module of the model and calls its
methods at fixed points of the loop; the loop itself names no layer. The three bases below
are the usual kinds of hooks: a weight constraint (``Regularized``), a layer that grows and
prunes its own units (``GrowingLayer``) and a model trained in phases (``Phased``).
"""

from __future__ import annotations

from torch import nn


class TrainingHook(nn.Module):
    """What a module adds to training. ``fit``, for every TrainingHook of the model:

    - builds the optimiser from ``parameter_groups()`` when it returns groups (each a dict
      with ``params`` and an ``lr_scale`` multiplying the run's learning rate), and leaves out
      ``owned_parameters()``, which the module steps itself;
    - calls ``start_epoch(epoch, epochs)`` before each epoch (0-based);
    - around each training forward pass, ``set_targets(labels)`` and ``set_targets(None)``,
      and adds ``auxiliary_loss(labels)`` (terms of the last forward) to the loss;
    - after each optimiser step, ``after_step(lr_factor)`` (the schedule's factor at the step);
    - after each epoch's steps, ``end_epoch()`` (units it removed), then ``data_passes(epoch,
      epochs)`` passes over the training split in eval mode without gradients and without
      augmentation, images in stored order: ``begin_pass(i)``, per batch ``set_targets`` and a
      forward of the whole model, ``end_pass(i)``;
    - reports ``n_units()`` per epoch (train_log.csv's ``slots``) and ``metrics_fields(name,
      n_train)`` in metrics.json.

    A module whose whole training state is in its state_dict keeps ``mid_epoch_resumable``;
    otherwise a stop signal mid-epoch falls back to the last epoch checkpoint.
    """

    mid_epoch_resumable = True

    def parameter_groups(self) -> list[dict] | None:
        """Optimiser groups ``[{"params": [...], "lr_scale": s}, ...]`` or None for one group."""
        return None

    def owned_parameters(self) -> list[nn.Parameter]:
        """Parameters this module steps itself; the run's optimiser leaves them alone."""
        return []

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Prepare epoch ``epoch`` (0-based) of ``epochs``."""

    def set_targets(self, labels) -> None:
        """Labels of the batch about to be forwarded in training or a pass (None afterwards)."""

    def auxiliary_loss(self, labels):
        """Extra loss terms of the last training forward pass (a scalar tensor), or None."""
        return None

    def after_step(self, lr_factor: float) -> None:
        """Called after every optimiser step."""

    def end_epoch(self) -> int:
        """Epoch bookkeeping after the steps (e.g. pruning); returns how many units went."""
        return 0

    def data_passes(self, epoch: int, epochs: int) -> int:
        """How many passes over the training split to run after epoch ``epoch`` (0-based)."""
        return 0

    def begin_pass(self, index: int) -> None:
        """Pass ``index`` over the training split starts."""

    def end_pass(self, index: int) -> None:
        """Pass ``index`` is complete (every training image was forwarded once)."""

    def n_units(self) -> int:
        """Current number of units that training grows (e.g. INH slots); 0 if none."""
        return 0

    def metrics_fields(self, name: str, n_train: int) -> dict:
        """Stage-specific fields of metrics.json (``name``: this module's name in the model)."""
        return {}


class Regularized(TrainingHook):
    """Base for layers with weight constraints (e.g. weights >= 0, unit-norm slots): the
    constraint is one visible mechanism, ``regularize_weights()`` after every step."""

    def init_weights(self) -> None:
        """(Re)initialise parameters; each layer calls it once, at the end of its constructor."""

    def regularize_weights(self) -> None:
        """Project parameters back onto their constraint set; called after every step."""

    def after_step(self, lr_factor: float) -> None:
        self.regularize_weights()


def regularize(model: nn.Module) -> None:
    """Call ``regularize_weights()`` on every Regularized module of ``model``."""
    for module in model.modules():
        if isinstance(module, Regularized):
            module.regularize_weights()


class GrowingLayer(TrainingHook):
    """Base for layers whose parameters change shape during training (grow and prune).

    Training tells such a layer the labels of the batch it trains on, steps its
    ``owned_parameters()`` with the layer's own stateless ``sgd_step()`` (so a shape change
    leaves no optimiser state behind) and calls ``end_epoch()`` after every epoch.
    """

    mid_epoch_resumable = False  # unless the layer says its state_dict holds all of it

    def sgd_step(self, lr_factor: float = 1.0) -> None:
        """One update of ``owned_parameters()`` from their gradients; ``lr_factor`` is the
        run's learning-rate schedule at this step (1 = the layer's own base rate)."""

    def after_step(self, lr_factor: float) -> None:
        self.sgd_step(lr_factor)


def growing_layers(model: nn.Module) -> list[GrowingLayer]:
    """Every GrowingLayer inside ``model``."""
    return [m for m in model.modules() if isinstance(m, GrowingLayer)]


class Phased(TrainingHook):
    """Base for models trained in phases that revisit the training set between epochs
    (ProtoPNet: warm-up with a frozen backbone, joint training, prototype push, last layer):
    ``parameter_groups``, ``start_epoch`` (e.g. setting ``requires_grad`` for this phase),
    ``auxiliary_loss`` (cluster and separation costs) and ``data_passes`` (push, refit).

    All phase decisions follow from the epoch number, so resuming from a checkpoint is exact.
    """


def training_hooks(model: nn.Module) -> list[tuple[str, TrainingHook]]:
    """Every TrainingHook inside ``model`` with its name, in module order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, TrainingHook)]
