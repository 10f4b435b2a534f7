"""The training loop every stage uses.

Read top to bottom: the split sits on the device as one uint8 tensor; each epoch draws
its permutation and augmentations from a generator seeded by (seed, epoch), so a run
resumed from an epoch checkpoint gives the same numbers as an uninterrupted one.

SIGTERM (a SLURM time limit or preemption) and SIGINT only set a flag, checked after each
optimiser step: the loop then writes a mid-epoch checkpoint (the position in the epoch, the
partial sums, the epoch generator's and torch's global RNG states, model and optimiser) and
raises TrainingInterrupted; a rerun continues from that step, bit for bit on a CPU. A growing
layer not known to keep all its state in its state_dict makes the rerun redo the epoch from
the last epoch checkpoint instead. A signal during the data passes or evaluation after the
steps lets the epoch finish and write its checkpoint first.
"""

from __future__ import annotations

import contextlib
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
from whitebox.layers import GumbelConv2d, IncrementalNeuralHashing, annealed_tau
from whitebox.layers.base import Phased, growing_layers, phased_modules, regularize
from whitebox.training.augment import augment_batch
from whitebox.training.checkpoint import (
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from whitebox.training.interrupt import StopRequest, TrainingInterrupted
from whitebox.training.invariance import ColourInvariance
from whitebox.training.schedule import lr_factor, make_optimizer

# Growing layers whose whole training state (INH: slots, their labels, running thresholds and
# this epoch's activation counters) lives in their state_dict, so a mid-epoch checkpoint
# restores them exactly (tests/test_training.py checks it). Any other growing layer makes a
# stop signal fall back to the last epoch checkpoint: the rerun redoes the partial epoch.
MID_EPOCH_RESUMABLE = (IncrementalNeuralHashing,)


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
    shuffle_labels: bool = False  # train on randomly permuted labels (a sanity-check control)


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


def parameter_groups(model: nn.Module, growing: list, phased: list[Phased]) -> list[dict]:
    """Optimiser groups with an ``lr_scale`` each: those Phased modules ask for (e.g. a higher
    rate for a new head than for a pretrained backbone), then every other parameter at scale 1.

    Growing layers (INH) step their own parameters, so the optimiser leaves those out.
    """
    owned = {id(p) for layer in growing for p in layer.owned_parameters()}
    groups = [{"params": list(group["params"]), "lr_scale": float(group.get("lr_scale", 1.0))}
              for module in phased for group in (module.parameter_groups() or [])]
    owned |= {id(p) for group in groups for p in group["params"]}
    rest = [p for p in model.parameters() if id(p) not in owned]
    return groups + ([{"params": rest, "lr_scale": 1.0}] if rest else [])


def training_pass(model: nn.Module, module: Phased, index: int, images: torch.Tensor,
                  labels: torch.Tensor, batch_size: int) -> None:
    """Pass ``index`` of ``module`` over the training split: eval mode, no gradients, no
    augmentation, stored order; ``module`` sees each batch's labels before its forward."""
    device = images.device
    model.eval()
    module.begin_pass(index)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                         enabled=device.type == "cuda"):
        for first in range(0, images.shape[0], batch_size):
            batch = images[first:first + batch_size].float().div_(255)
            module.set_targets(labels[first:first + batch_size])
            model(batch.contiguous(memory_format=torch.channels_last))
    module.set_targets(None)
    module.end_pass(index)


def batch_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
               settings: TrainSettings, invariance: ColourInvariance | None, growing: list,
               phased: list[Phased]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The forward pass of one training batch (bf16 autocast on CUDA): logits, the loss to
    minimise (cross-entropy, the weighted colour-invariance penalty, Phased modules' extra
    costs) and the unweighted penalty. Growing layers see the labels during the pass."""
    device = images.device
    for layer in growing:
        layer.set_targets(labels)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        if invariance is None:
            logits, penalty = model(images), torch.zeros((), device=device)
        else:  # the batch and its recoloured copy in one pass
            logits, penalty = invariance(model, images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=settings.label_smoothing)
        if invariance is not None:
            loss = loss + settings.invariance["weight"] * penalty
        for module in phased:  # e.g. ProtoPNet's cluster and separation costs
            extra = module.auxiliary_loss(labels)
            if extra is not None:
                loss = loss + extra.float()
    for layer in growing:
        layer.set_targets(None)
    return logits, loss, penalty


def shuffled_labels(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``labels`` randomly permuted by a CPU generator seeded with ``seed``: the class counts stay,
    any link between image and label is gone (Adebayo et al. 2018's data randomisation test)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.shape[0], generator=generator).to(labels.device)
    return labels[order]


def fit(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
        test_images: torch.Tensor, test_labels: torch.Tensor, settings: TrainSettings,
        seed: int, checkpoint_path: Path | None = None, run_id: str = "",
        on_epoch: Callable[[EpochRecord], None] | None = None) -> tuple[list[EpochRecord], float]:
    """Train ``model`` in place; images are uint8 ``(N, C, H, W)`` already on the device.

    Writes an epoch checkpoint to ``checkpoint_path`` (atomically) and resumes from it
    when it exists with the same ``run_id``. Returns the epoch records and the training
    wall time in seconds (summed over resumed parts). With a ``checkpoint_path``, SIGTERM
    and SIGINT end training with TrainingInterrupted after a checkpoint is written (see the
    module docstring).
    """
    device = train_images.device
    if settings.shuffle_labels:
        train_labels = shuffled_labels(train_labels, seed)
    # channels_last: convolutions run faster in NHWC (about 1.1x for Directional on a CPU,
    # tensor-core friendly on a GPU); parameters keep their values.
    model.to(memory_format=torch.channels_last)
    growing = growing_layers(model)
    phased = phased_modules(model)
    optimizer = make_optimizer(parameter_groups(model, growing, phased), **settings.optimizer)
    base_lr = settings.optimizer["lr"]
    n_train = train_images.shape[0]
    steps_per_epoch = -(-n_train // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    invariance = (ColourInvariance(model, settings.invariance["augmentations"])
                  if settings.invariance else None)

    records: list[EpochRecord] = []
    elapsed = 0.0
    position = None  # where a mid-epoch checkpoint stopped
    state = load_checkpoint(checkpoint_path, run_id) if checkpoint_path else None
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        records = [EpochRecord(**row) for row in state["records"]]
        elapsed = state["elapsed"]
        position = state.get("position")
        where = (f"in epoch {len(records) + 1}/{settings.epochs} after step "
                 f"{position['step']}/{steps_per_epoch}" if position else
                 f"after epoch {len(records)}/{settings.epochs}")
        print(f"resuming {where} from {checkpoint_path}", file=sys.stderr)

    # Without a checkpoint there is nothing to stop cleanly for: signals keep their effect.
    with StopRequest() if checkpoint_path else contextlib.nullcontext() as stop:
        for epoch in range(len(records), settings.epochs):
            start = time.perf_counter()
            generator = epoch_generator(seed, epoch)
            torch.manual_seed(seed * 100_003 + epoch)  # for random layers (Gumbel) and colour augmentation
            for module in phased:
                module.start_epoch(epoch, settings.epochs)
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
            done = 0  # steps of this epoch already taken (by the run a mid-epoch checkpoint saved)
            if position is not None:  # continue exactly where the interrupted run stopped
                done, lr = position["step"], position["lr"]
                loss_sum, penalty_sum, correct = (position[key].to(device) for key in
                                                  ("loss_sum", "penalty_sum", "correct"))
                generator.set_state(position["generator"])
                restore_rng_state(position["rng"], device)
                start -= position["epoch_time_s"]
                position = None
            batches = range(done * settings.batch_size, n_train, settings.batch_size)
            bar = tqdm(batches, desc=f"epoch {epoch + 1}/{settings.epochs}", leave=False,
                       disable=None, file=sys.stderr, initial=done, total=steps_per_epoch)
            for step_in_epoch, first in enumerate(bar, start=done):
                index = order[first:first + settings.batch_size]
                if index.numel() < 2:  # BatchNorm cannot train on a single image
                    continue
                lr = base_lr * lr_factor(settings.schedule, epoch * steps_per_epoch + step_in_epoch,
                                         total_steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                images = train_images[index].float().div_(255)
                images = augment_batch(images.contiguous(memory_format=torch.channels_last),
                                       settings.augment, generator)
                labels = train_labels[index]
                logits, loss, penalty = batch_loss(model, images, labels, settings, invariance,
                                                   growing, phased)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                for layer in growing:
                    layer.sgd_step(lr / base_lr)
                regularize(model)
                loss_sum += loss.detach() * index.numel()
                penalty_sum += penalty.detach() * index.numel()
                correct += (logits.argmax(1) == labels).sum()

                if stop is not None and stop.requested:  # SIGTERM/SIGINT: save this step, stop
                    bar.close()
                    done = step_in_epoch + 1
                    stopped = (f"interrupted by {stop.signal_name} in epoch {epoch + 1}/"
                               f"{settings.epochs} after step {done}/{steps_per_epoch}")
                    if any(not isinstance(layer, MID_EPOCH_RESUMABLE) for layer in growing):
                        kept = (f"the checkpoint of epoch {len(records)} at {checkpoint_path} is kept"
                                if records else "no epoch has finished yet")
                        raise TrainingInterrupted(
                            f"{stopped}; growing layers cannot be saved mid-epoch, so {kept}; "
                            f"rerun to continue (epoch {epoch + 1} is redone)", stop.signal_number)
                    save_checkpoint(checkpoint_path, run_id, model, optimizer,
                                    [asdict(r) for r in records], elapsed, position={
                                        "epoch": epoch, "step": done, "lr": lr,
                                        "loss_sum": loss_sum.cpu(), "penalty_sum": penalty_sum.cpu(),
                                        "correct": correct.cpu(), "generator": generator.get_state(),
                                        "rng": rng_state(device),
                                        "epoch_time_s": time.perf_counter() - start})
                    raise TrainingInterrupted(f"{stopped}; checkpoint written to {checkpoint_path}; "
                                              "rerun to continue", stop.signal_number)

            train_loss = loss_sum.item() / n_train
            if not math.isfinite(train_loss):
                raise TrainingDiverged(
                    f"training loss became {train_loss} in epoch {epoch + 1}; lower "
                    f"training.optimizer.lr (now {base_lr}) or check the data"
                )
            pruned = sum(layer.end_epoch() for layer in growing)
            for module in phased:  # e.g. ProtoPNet's prototype push and last-layer refit
                for index in range(module.data_passes(epoch, settings.epochs)):
                    training_pass(model, module, index, train_images, train_labels,
                                  settings.eval_batch_size)
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
            # A signal during the data passes or evaluation: this epoch's checkpoint is written;
            # after the last epoch the run is complete and simply returns.
            if stop is not None and stop.requested and epoch + 1 < settings.epochs:
                raise TrainingInterrupted(
                    f"interrupted by {stop.signal_name} after epoch {epoch + 1}/{settings.epochs}; "
                    f"checkpoint written to {checkpoint_path}; rerun to continue", stop.signal_number)
    return records, elapsed
