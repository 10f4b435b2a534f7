"""The training loop every stage uses.

Read top to bottom: the split sits on the device as one uint8 tensor; each epoch draws
its permutation and augmentations from a generator seeded by (seed, epoch), so a run
resumed from an epoch checkpoint gives the same numbers as an uninterrupted one. What a
stage adds (weight constraints, growing layers, phases and data passes, extra loss terms,
the Gumbel temperature, adversarial batches) comes in through ``Hooks``; the loop names no
layer.

SIGTERM (a SLURM time limit or preemption) and SIGINT only set a flag, checked after each
optimiser step: the loop then writes a mid-epoch checkpoint (``TrainingState``: the position
in the epoch, the partial sums, the epoch generator's and torch's global RNG states, model
and optimiser) and raises TrainingInterrupted; a rerun continues from that step, bit for bit
on a CPU. A hook that does not keep all its state in its state_dict makes the rerun redo the
epoch from the last epoch checkpoint instead. A signal during the data passes or evaluation
after the steps lets the epoch finish and write its checkpoint first.
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
from torch import nn
from tqdm import tqdm

from whitebox.augmentations import augment_batch
from whitebox.errors import UserError
from whitebox.evaluation.accuracy import accuracy_report, predict
from whitebox.training.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from whitebox.training.hooks import Hooks
from whitebox.training.interrupt import StopRequest, TrainingInterrupted
from whitebox.training.label_noise import flip_labels
from whitebox.training.schedule import lr_factor, make_optimizer
from whitebox.training.settings import TrainSettings


class TrainingDiverged(UserError, RuntimeError):
    """The loss became NaN or infinite."""


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


def shuffled_labels(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """``labels`` randomly permuted by a CPU generator seeded with ``seed``: the class counts stay,
    any link between image and label is gone (Adebayo et al. 2018's data randomisation test)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(labels.shape[0], generator=generator).to(labels.device)
    return labels[order]


@dataclass
class EpochProgress:
    """The running part of one epoch: steps taken, partial sums, its generator and clock."""

    epoch: int
    generator: torch.Generator
    loss_sum: torch.Tensor
    penalty_sum: torch.Tensor
    correct: torch.Tensor
    lr: float
    step: int = 0
    start: float = field(default_factory=time.perf_counter)

    @classmethod
    def begin(cls, seed: int, epoch: int, device: torch.device, lr: float) -> EpochProgress:
        torch.manual_seed(seed * 100_003 + epoch)  # for random layers (Gumbel) and colour augmentation
        zero = torch.zeros((), device=device)
        return cls(epoch, epoch_generator(seed, epoch), zero.clone(), zero.clone(),
                   torch.zeros((), device=device, dtype=torch.long), lr)

    def restore(self, position: dict, device: torch.device) -> None:
        """Continue exactly where an interrupted run stopped (``position`` of TrainingState)."""
        self.step, self.lr = position["step"], position["lr"]
        self.loss_sum, self.penalty_sum, self.correct = (
            position[key].to(device) for key in ("loss_sum", "penalty_sum", "correct"))
        self.generator.set_state(position["generator"])
        restore_rng_state(position["rng"], device)
        self.start -= position["epoch_time_s"]

    def add(self, logits: torch.Tensor, labels: torch.Tensor, loss: torch.Tensor,
            penalty: torch.Tensor) -> None:
        self.loss_sum += loss.detach() * labels.numel()
        self.penalty_sum += penalty.detach() * labels.numel()
        self.correct += (logits.argmax(1) == labels).sum()

    def position(self, device: torch.device) -> dict:
        return {"epoch": self.epoch, "step": self.step, "lr": self.lr,
                "loss_sum": self.loss_sum.cpu(), "penalty_sum": self.penalty_sum.cpu(),
                "correct": self.correct.cpu(), "generator": self.generator.get_state(),
                "rng": rng_state(device), "epoch_time_s": time.perf_counter() - self.start}


@dataclass
class TrainingState:
    """Where a run stands: the finished epochs' records and training seconds, and after a stop
    signal mid-epoch the position in the next one. What a checkpoint holds besides the model
    and optimiser states."""

    records: list[EpochRecord] = field(default_factory=list)
    elapsed: float = 0.0
    position: dict | None = None

    @classmethod
    def resume(cls, path: Path | None, run_id: str, model: nn.Module,
               optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> TrainingState:
        """The state saved at ``path`` for ``run_id`` (model and optimizer restored), else a
        fresh one."""
        saved = load_checkpoint(path, run_id) if path else None
        if saved is None:
            return cls()
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = cls([EpochRecord(**row) for row in saved["records"]], saved["elapsed"],
                    saved.get("position"))
        where = (f"in epoch {len(state.records) + 1}/{epochs} after step "
                 f"{state.position['step']}/{steps_per_epoch}" if state.position else
                 f"after epoch {len(state.records)}/{epochs}")
        print(f"resuming {where} from {path}", file=sys.stderr)
        return state

    def save(self, path: Path, run_id: str, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        save_checkpoint(path, run_id, model, optimizer, [asdict(r) for r in self.records],
                        self.elapsed, position=self.position)


def training_pass(model: nn.Module, hook, index: int, images: torch.Tensor,
                  labels: torch.Tensor, batch_size: int) -> None:
    """Pass ``index`` of ``hook`` over the training split: eval mode, no gradients, no
    augmentation, stored order; ``hook`` sees each batch's labels before its forward."""
    device = images.device
    model.eval()
    hook.begin_pass(index)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16,
                                         enabled=device.type == "cuda"):
        for first in range(0, images.shape[0], batch_size):
            batch = images[first:first + batch_size].float().div_(255)
            hook.set_targets(labels[first:first + batch_size])
            model(batch.contiguous(memory_format=torch.channels_last))
    hook.set_targets(None)
    hook.end_pass(index)


def fit(model: nn.Module, train_images: torch.Tensor, train_labels: torch.Tensor,
        test_images: torch.Tensor, test_labels: torch.Tensor, settings: TrainSettings,
        seed: int, checkpoint_path: Path | None = None, run_id: str = "",
        on_epoch: Callable[[EpochRecord], None] | None = None,
        hooks: Hooks | None = None) -> tuple[list[EpochRecord], float]:
    """Train ``model`` in place; images are uint8 ``(N, C, H, W)`` already on the device.

    Writes an epoch checkpoint to ``checkpoint_path`` (atomically) and resumes from it
    when it exists with the same ``run_id``. Returns the epoch records and the training
    wall time in seconds (summed over resumed parts). With a ``checkpoint_path``, SIGTERM
    and SIGINT end training with TrainingInterrupted after a checkpoint is written (see the
    module docstring). ``hooks`` defaults to ``Hooks(model, settings)``.
    """
    device = train_images.device
    if settings.shuffle_labels:
        train_labels = shuffled_labels(train_labels, seed)
    if settings.flip_labels:
        train_labels = flip_labels(train_labels, **settings.flip_labels)[0]
    # channels_last: convolutions run faster in NHWC (about 1.1x for Directional on a CPU,
    # tensor-core friendly on a GPU); parameters keep their values.
    model.to(memory_format=torch.channels_last)
    hooks = hooks or Hooks(model, settings)
    optimizer = make_optimizer(hooks.parameter_groups(model), **settings.optimizer)
    base_lr = settings.optimizer["lr"]
    n_train = train_images.shape[0]
    steps_per_epoch = -(-n_train // settings.batch_size)
    total_steps = steps_per_epoch * settings.epochs
    state = TrainingState.resume(checkpoint_path, run_id, model, optimizer, settings.epochs,
                                 steps_per_epoch)

    # Without a checkpoint there is nothing to stop cleanly for: signals keep their effect.
    with StopRequest() if checkpoint_path else contextlib.nullcontext() as stop:
        for epoch in range(len(state.records), settings.epochs):
            progress = EpochProgress.begin(seed, epoch, device, base_lr)
            hooks.start_epoch(epoch, settings.epochs)
            order = torch.randperm(n_train, generator=progress.generator).to(device)
            if state.position is not None:
                progress.restore(state.position, device)
                state.position = None
            model.train()
            bar = tqdm(range(progress.step, steps_per_epoch), desc=f"epoch {epoch + 1}/{settings.epochs}",
                       leave=False, disable=None, file=sys.stderr, initial=progress.step,
                       total=steps_per_epoch)
            for step in bar:
                index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
                if index.numel() >= 2:  # BatchNorm cannot train on a single image
                    lr = base_lr * lr_factor(settings.schedule, epoch * steps_per_epoch + step,
                                             total_steps)
                    for group in optimizer.param_groups:
                        group["lr"] = lr * group.get("lr_scale", 1.0)
                    images = train_images[index].float().div_(255)
                    images = augment_batch(images.contiguous(memory_format=torch.channels_last),
                                           settings.augment, progress.generator)
                    labels = train_labels[index]
                    images = hooks.perturb(model, images, labels, progress.generator)  # e.g. PGD
                    logits, loss, penalty = hooks.loss(model, images, labels, settings.label_smoothing)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    hooks.after_step(lr / base_lr)
                    progress.add(logits, labels, loss, penalty)
                    progress.lr = lr
                progress.step = step + 1
                if stop is not None and stop.requested:  # SIGTERM/SIGINT: save this step, stop
                    bar.close()
                    _stop_mid_epoch(state, progress, hooks, stop, checkpoint_path, run_id, model,
                                    optimizer, settings.epochs, steps_per_epoch, device)

            train_loss = progress.loss_sum.item() / n_train
            if not math.isfinite(train_loss):
                raise TrainingDiverged(
                    f"training loss became {train_loss} in epoch {epoch + 1}; lower "
                    f"training.optimizer.lr (now {base_lr}) or check the data"
                )
            pruned = hooks.end_epoch()
            for hook, index in hooks.data_passes(epoch, settings.epochs):  # e.g. a prototype push
                training_pass(model, hook, index, train_images, train_labels, settings.eval_batch_size)
            test = accuracy_report(predict(model, test_images, settings.eval_batch_size),
                                   test_labels, classes=[])
            state.elapsed += time.perf_counter() - progress.start
            record = EpochRecord(epoch=epoch + 1, train_loss=round(train_loss, 6),
                                 train_accuracy=round(100.0 * progress.correct.item() / n_train, 4),
                                 test_accuracy=test["accuracy"], lr=progress.lr,
                                 epoch_time_s=round(time.perf_counter() - progress.start, 3),
                                 slots=hooks.n_units(), pruned=pruned,
                                 invariance_loss=round(progress.penalty_sum.item() / n_train, 6))
            state.records.append(record)
            print(" ".join(f"{k}={v}" for k, v in asdict(record).items()), file=sys.stderr,
                  flush=True)
            if checkpoint_path:
                state.save(checkpoint_path, run_id, model, optimizer)
            if on_epoch:
                on_epoch(record)
            # A signal during the data passes or evaluation: this epoch's checkpoint is written;
            # after the last epoch the run is complete and simply returns.
            if stop is not None and stop.requested and epoch + 1 < settings.epochs:
                raise TrainingInterrupted(
                    f"interrupted by {stop.signal_name} after epoch {epoch + 1}/{settings.epochs}; "
                    f"checkpoint written to {checkpoint_path}; rerun to continue", stop.signal_number)
    return state.records, state.elapsed


def _stop_mid_epoch(state: TrainingState, progress: EpochProgress, hooks: Hooks, stop: StopRequest,
                    checkpoint_path: Path, run_id: str, model: nn.Module,
                    optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
                    device: torch.device) -> None:
    """Write the mid-epoch checkpoint (or keep the epoch one) and raise TrainingInterrupted."""
    stopped = (f"interrupted by {stop.signal_name} in epoch {progress.epoch + 1}/{epochs} "
               f"after step {progress.step}/{steps_per_epoch}")
    if not hooks.mid_epoch_resumable:
        kept = (f"the checkpoint of epoch {len(state.records)} at {checkpoint_path} is kept"
                if state.records else "no epoch has finished yet")
        raise TrainingInterrupted(f"{stopped}; growing layers cannot be saved mid-epoch, so {kept}; "
                                  f"rerun to continue (epoch {progress.epoch + 1} is redone)",
                                  stop.signal_number)
    state.position = progress.position(device)
    state.save(checkpoint_path, run_id, model, optimizer)
    raise TrainingInterrupted(f"{stopped}; checkpoint written to {checkpoint_path}; rerun to continue",
                              stop.signal_number)
