"""The training loop every stage uses.

Read top to bottom: the split sits on the device as one uint8 tensor; each epoch draws
its permutation and augmentations from a generator seeded by (seed, epoch), so a run
resumed from an epoch checkpoint gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from whitebox.evaluation import accuracy_report, predict
from whitebox.layers import GumbelConv2d, annealed_tau
from whitebox.layers.base import growing_layers, regularize
from whitebox.training.augment import augment_batch
from whitebox.training.checkpoint import load_checkpoint, save_checkpoint
from whitebox.training.invariance import ColourInvariance
from whitebox.training.schedule import lr_factor, make_optimizer


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainSettings:
    """The ``training:`` block of one experiment (see the config schema for meanings)."""

    epochs: int = 8
    batch_size: int = 128
    optimizer: dict = field(default_factory=lambda: {"name": "adam", "lr": 1e-3})
    schedule: str = "constant"
    augment: list[str] = field(default_factory=list)
    label_smoothing: float = 0.0
    eval_batch_size: int = 1000
    tau: dict | None = None  # {"start", "end"}: GumbelConv2d temperature schedule
    invariance: dict | None = None  # {"weight", "augmentations"}: colour-invariance penalty


@dataclass
class EpochRecord:
    """One row of train_log.csv."""

    epoch: int
    train_loss: float
    train_accuracy: float
    test_accuracy: float
    lr: float
    epoch_time_s: float
    slots: int = 0  # units of growing layers (e.g. INH slots) after the epoch; 0 if none
    pruned: int = 0  # units those layers removed at the end of the epoch
    invariance_loss: float = 0.0  # mean colour-invariance penalty (unweighted); 0 if off


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """CPU generator for the random draws of one epoch."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def fit(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
        test_images: torch.Tensor, test_labels: torch.Tensor, settings: TrainSettings,
        seed: int, checkpoint_path: Path | None = None, run_id: str = "",
        on_epoch: Callable[[EpochRecord], None] | None = None) -> tuple[list[EpochRecord], float]:
    """Train ``model`` in place; images are uint8 ``(N, C, H, W)`` already on the device.

    Writes an epoch checkpoint to ``checkpoint_path`` (atomically) and resumes from it
    when it exists with the same ``run_id``. Returns the epoch records and the training
    wall time in seconds (summed over resumed parts).
    """
    device = train_images.device
    # channels_last: convolutions run faster in NHWC (about 1.1x for Directional on a CPU,
    # tensor-core friendly on a GPU); parameters keep their values.
    model.to(memory_format=torch.channels_last)
    # Growing layers (INH) step their own parameters; the optimiser gets the rest.
    growing = growing_layers(model)
    owned = {id(p) for layer in growing for p in layer.owned_parameters()}
    optimizer = make_optimizer([p for p in model.parameters() if id(p) not in owned],
                               **settings.optimizer)
    base_lr = settings.optimizer["lr"]
    n_train = train_images.shape[0]
    steps_per_epoch = -(-n_train // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    invariance = (ColourInvariance(model, settings.invariance["augmentations"])
                  if settings.invariance else None)
    invariance_weight = settings.invariance["weight"] if settings.invariance else 0.0

    records: list[EpochRecord] = []
    elapsed = 0.0
    state = load_checkpoint(checkpoint_path, run_id) if checkpoint_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        records = [EpochRecord(**row) for row in state["records"]]
        elapsed = state["elapsed"]
        print(f"resuming after epoch {len(records)}/{settings.epochs} from {checkpoint_path}",
              file=sys.stderr)

    for epoch in range(len(records), settings.epochs):
        start = time.perf_counter()
        generator = epoch_generator(seed, epoch)
        torch.manual_seed(seed * 100_003 + epoch)  # for random layers (Gumbel) and colour augmentation
        if settings.tau:
            tau = annealed_tau(epoch, settings.epochs, settings.tau["start"], settings.tau["end"])
            for layer in model.modules():
                if isinstance(layer, GumbelConv2d):
                    layer.set_tau(tau)
        order = torch.randperm(n_train, generator=generator).to(device)
        model.train()
        loss_sum = torch.zeros((), device=device)
        penalty_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        lr = base_lr
        batches = range(0, n_train, settings.batch_size)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False,
                   disable=None, file=sys.stderr)
        for step_in_epoch, first in enumerate(bar):
            index = order[first:first + settings.batch_size]
            if index.numel() < 2:  # BatchNorm cannot train on a single image
                continue
            lr = base_lr * lr_factor(settings.schedule, epoch * steps_per_epoch + step_in_epoch,
                                     total_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = train_images[index].float().div_(255)
            images = augment_batch(images.contiguous(memory_format=torch.channels_last),
                                   settings.augment, generator)
            labels = train_labels[index]
            for layer in growing:
                layer.set_targets(labels)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                if invariance is None:
                    logits, penalty = model(images), torch.zeros((), device=device)
                else:  # the batch and its recoloured copy in one pass
                    logits, penalty = invariance(model, images)
                loss = F.cross_entropy(logits.float(), labels,
                                       label_smoothing=settings.label_smoothing)
                loss = loss + invariance_weight * penalty
            for layer in growing:
                layer.set_targets(None)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for layer in growing:
                layer.sgd_step(lr / base_lr)
            regularize(model)
            loss_sum += loss.detach() * index.numel()
            penalty_sum += penalty.detach() * index.numel()
            correct += (logits.argmax(1) == labels).sum()

        train_loss = loss_sum.item() / n_train
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training loss became {train_loss} in epoch {epoch + 1}; lower "
                f"training.optimizer.lr (now {base_lr}) or check the data"
            )
        pruned = sum(layer.end_epoch() for layer in growing)
        test = accuracy_report(predict(model, test_images, settings.eval_batch_size),
                               test_labels, classes=[])
        elapsed += time.perf_counter() - start
        record = EpochRecord(epoch=epoch + 1, train_loss=round(train_loss, 6),
                             train_accuracy=round(100.0 * correct.item() / n_train, 4),
                             test_accuracy=test["accuracy"], lr=lr,
                             epoch_time_s=round(time.perf_counter() - start, 3),
                             slots=sum(layer.n_units() for layer in growing), pruned=pruned,
                             invariance_loss=round(penalty_sum.item() / n_train, 6))
        records.append(record)
        print(" ".join(f"{k}={v}" for k, v in asdict(record).items()), file=sys.stderr,
              flush=True)
        if checkpoint_path:
            save_checkpoint(checkpoint_path, run_id, model, optimizer,
                            [asdict(r) for r in records], elapsed)
        if on_epoch:
            on_epoch(record)
    return records, elapsed
