"""What stages add to training, gathered in one place for ``fit``: the model's TrainingHook
modules (``whitebox.layers.base``) and the hooks that training settings ask for (the Gumbel
temperature schedule, the colour-invariance loss, adversarial batches). ``fit`` talks only to
``Hooks``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers.base import TrainingHook, training_hooks
from whitebox.training.settings import TrainSettings


class TemperatureSchedule:
    """``training.tau``: before each epoch, every module with ``set_tau`` (GumbelConv2d) gets
    the temperature annealed exponentially from ``start`` (first epoch) to ``end`` (last)."""

    def __init__(self, model: nn.Module, start: float, end: float) -> None:
        self.modules = [m for m in model.modules() if callable(getattr(m, "set_tau", None))]
        self.start, self.end = start, end

    def start_epoch(self, epoch: int, epochs: int) -> None:
        from whitebox.layers.gumbel import annealed_tau

        tau = annealed_tau(epoch, epochs, self.start, self.end)
        for module in self.modules:
            module.set_tau(tau)


class Hooks:
    """The model's TrainingHook modules, in module order, and the settings' hooks."""

    def __init__(self, model: nn.Module, settings: TrainSettings) -> None:
        self.named = training_hooks(model)
        self.modules: list[TrainingHook] = [module for _, module in self.named]
        self.schedule = (TemperatureSchedule(model, settings.tau["start"], settings.tau["end"])
                         if settings.tau else None)
        self.invariance = None
        if settings.invariance:
            from whitebox.training.invariance import ColourInvariance

            self.invariance = ColourInvariance(model, settings.invariance["augmentations"],
                                               settings.invariance["weight"])
        self.adversarial = None
        if settings.adversarial:
            from whitebox.training.adversarial import AdversarialTraining

            self.adversarial = AdversarialTraining(**settings.adversarial)

    @property
    def mid_epoch_resumable(self) -> bool:
        return all(module.mid_epoch_resumable for module in self.modules)

    def parameter_groups(self, model: nn.Module) -> list[dict]:
        """Optimiser groups with an ``lr_scale`` each: those the hooks ask for (e.g. a higher
        rate for a new head than for a pretrained backbone), then every other parameter at
        scale 1; parameters a hook steps itself (INH slots) are left out."""
        owned = {id(p) for module in self.modules for p in module.owned_parameters()}
        groups = [{"params": list(group["params"]), "lr_scale": float(group.get("lr_scale", 1.0))}
                  for module in self.modules for group in (module.parameter_groups() or [])]
        owned |= {id(p) for group in groups for p in group["params"]}
        rest = [p for p in model.parameters() if id(p) not in owned]
        return groups + ([{"params": rest, "lr_scale": 1.0}] if rest else [])

    def start_epoch(self, epoch: int, epochs: int) -> None:
        for module in self.modules:
            module.start_epoch(epoch, epochs)
        if self.schedule is not None:
            self.schedule.start_epoch(epoch, epochs)

    def perturb(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                generator: torch.Generator) -> torch.Tensor:
        """The training batch the loss sees: ``images`` (augmented), or their adversarial
        versions with ``training.adversarial`` (random draws from the epoch's ``generator``)."""
        return images if self.adversarial is None else self.adversarial(model, images, labels,
                                                                          generator)

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
             label_smoothing: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The forward pass of one training batch (bf16 autocast on CUDA): logits, the loss to
        minimise (cross-entropy, the weighted invariance penalty, the hooks' auxiliary terms) and
        the unweighted invariance penalty (0 without). The hooks see the labels meanwhile."""
        device = images.device
        for module in self.modules:
            module.set_targets(labels)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if self.invariance is None:
                logits, penalty = model(images), torch.zeros((), device=device)
            else:  # the batch and its recoloured copy in one pass
                logits, penalty = self.invariance(model, images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
            if self.invariance is not None:
                loss = loss + self.invariance.weight * penalty
            for module in self.modules:  # e.g. ProtoPNet's cluster and separation costs
                extra = module.auxiliary_loss(labels)
                if extra is not None:
                    loss = loss + extra.float()
        for module in self.modules:
            module.set_targets(None)
        return logits, loss, penalty

    def after_step(self, lr_factor: float) -> None:
        for module in self.modules:
            module.after_step(lr_factor)

    def end_epoch(self) -> int:
        return sum(module.end_epoch() for module in self.modules)

    def data_passes(self, epoch: int, epochs: int) -> list[tuple[TrainingHook, int]]:
        """(module, pass index) of every pass over the training split after this epoch."""
        return [(module, index) for module in self.modules
                for index in range(module.data_passes(epoch, epochs))]

    def n_units(self) -> int:
        return sum(module.n_units() for module in self.modules)

    def metrics_fields(self, n_train: int) -> dict:
        """Every hook's metrics.json fields, merged (dict values of one key merged too)."""
        fields: dict = {}
        for name, module in self.named:
            for key, value in module.metrics_fields(name, n_train).items():
                if isinstance(value, dict) and isinstance(fields.get(key), dict):
                    fields[key] = {**fields[key], **value}
                else:
                    fields[key] = value
        return fields
