"""What the CUB-200 stage's models cost per training step (`--only cub`).

The five ``cub_*`` experiments of config.yaml (their model and model_args, 200 classes), each one
training step as ``whitebox.training.fit`` takes it: uint8 batch -> float / 255 -> channels_last ->
hflip -> forward under bf16 autocast on CUDA -> cross entropy + the Phased modules' auxiliary loss
(ProtoPNet's cluster, separation and L1 terms) -> backward -> Adam over fit's parameter groups ->
weight constraints. The models are in train mode and in the joint phase (``start_epoch`` of a late
epoch: backbone, add-on and prototypes trainable), the expensive phase that most epochs run.
Weights are random: the cost of a step does not depend on their values.

* Ratios of seconds per step against the fine-tuned baseline on the same backbone, timed in the
  same process, interleaved (the order reverses every round) after a warm-up of two steps each;
  the value is the median of the per-round ratios (invariance.py's conventions, including the BUSY
  flag and the retries when other processes load the CPU): ProtoPNet and flexible parts over
  ``cub_resnet34``, flexible parts over ``cub_bagnet33``.
* Training throughput (images per second, from the median seconds per step) of every model, and on
  CUDA the peak memory of one step of each (``torch.cuda.max_memory_allocated`` after a reset).

On the CPU: batch 8 on 2 threads, 224x224 images (112x112 with ``--quick``). On CUDA: batch 64 at
224x224, the bf16 autocast path the GPU runs take.
"""

from __future__ import annotations

import statistics
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.invariance import ratios_to, timed_group
from benchmarks.report import Measurement
from benchmarks.stages import CONFIG, SEED, THREADS, busy_note

N_CLASSES = 200  # CUB-200-2011
LR = 1e-4  # the cub_* experiments' Adam learning rate (the step's cost does not depend on it)
JOINT_EPOCH = 1000  # start_epoch(JOINT_EPOCH, JOINT_EPOCH + 1): long past any warm-up phase
# baseline experiment -> the experiments timed against it (same backbone, same process).
GROUPS: dict[str, tuple[str, ...]] = {
    "cub_resnet34": ("cub_protopnet_resnet34", "cub_flexparts_resnet34"),
    "cub_bagnet33": ("cub_flexparts_bagnet33",),
}

# Limits of the step ratios on the CPU (2 threads, batch 8). The prototype models add to the
# baseline's step only a head on the backbone's last map: the add-on (two 1x1 convolutions, 512 or
# 2048 -> 128 -> 128), the squared distances of every part to every location (one float32 matrix
# product, N x hw x 128 by 128 x prototypes * parts), a dozen elementwise passes over that distance
# tensor of N x prototypes * parts x hw floats (clamp, min over locations, log similarity, their
# backward, the zeroed gradient buffers) and Adam on 0.6-1.2 M more parameters. Arithmetic is not
# what it costs: counted with torch.utils.flop_counter, a step (forward + backward) per 224x224
# image is 21.7 GFLOP for the ResNet34 baseline, x1.005 for ProtoPNet (2000 prototypes x 1 part on
# the 7x7 map) and x1.017 for flexible parts (1000 x 9 parts); 97.5 GFLOP for the BagNet-33
# baseline and x1.05 for its flexible parts (at 112x112: x1.005, x1.02 and x1.04).
# * ResNet34: the distance tensor is small (8 x 2000 x 49 and 8 x 9000 x 49 floats, 3 and 14 MB), so
#   the head costs its few dozen small operations and Adam over the extra parameters. Measured on 2
#   quiet cores at 224x224: 1.04x ProtoPNet (per-round 0.97-1.05), 1.11x flexible parts
#   (1.04-1.15); at 112x112 (--quick) 1.02-1.04x and 1.16-1.17x over two runs. Limit 1.3: a MISS
#   means the head does work that grows with the backbone's (e.g. a second backbone pass) or a loop
#   over prototypes or parts.
# * BagNet-33: its last map is 24x24, so the distance tensor is 8 x 9000 x 576 floats, 166 MB, and
#   each pass over it is a fresh allocation that glibc serves by mmap (above its 32 MB threshold):
#   first-touch page faults make each pass cost about 0.15 s (the profiler books them to fill_ and
#   to the elementwise ops), about 2 s a step, against 6.3 s for the baseline step. Measured on 2
#   quiet cores at 224x224: 1.35x (per-round 1.31-1.39); the same step with
#   MALLOC_MMAP_THRESHOLD_=4e9 (memory reused, no page faults) is 1.14x (5.7 vs 5.0 s); at 112x112
#   (29 MB, which glibc's dynamic threshold keeps in the heap) 1.07-1.10x. Limit 1.6: a MISS means more
#   passes over the distance tensor than these (e.g. a per-part copy, or float64).
CPU_RATIO_LIMITS: dict[str, float | None] = {
    "cub_protopnet_resnet34": 1.3,
    "cub_flexparts_resnet34": 1.3,
    "cub_flexparts_bagnet33": 1.6,
}
# On CUDA the backbone runs in bf16 on tensor cores while the distances stay float32 (by design,
# see PartPrototypes.distances), so the head's share of the step is larger there and not yet
# measured: INFO lines, no limit.


@dataclass(frozen=True)
class StepShape:
    """What one timed step trains on: ``batch`` images of ``image_size`` x ``image_size``."""

    batch: int
    image_size: int


# --- pure helpers (tests/test_bench_cub.py) ---------------------------------------------------

def step_shape(device_type: str, quick: bool) -> StepShape:
    """Batch 64 at 224x224 on CUDA (a GPU run's batch); on the CPU batch 8 at 224x224, 112x112
    with ``quick``, so that the part takes minutes on 2 cores."""
    if device_type == "cuda":
        return StepShape(64, 224)
    return StepShape(8, 112 if quick else 224)


def cub_variants(config: dict) -> dict[str, tuple[str, dict]]:
    """``name -> (model, model_args)`` of every experiment in GROUPS (baselines first in each
    group), read from the config; a missing experiment raises KeyError naming it."""
    from whitebox.config import experiment_spec

    variants = {}
    for baseline, others in GROUPS.items():
        for name in (baseline, *others):
            if name not in config["experiments"]:
                raise KeyError(f"benchmark cub: experiment {name!r} is not in config.yaml")
            spec = experiment_spec(config, name)
            variants[name] = (spec.model, spec.model_args)
    return variants


def joint_phase(model: nn.Module) -> None:
    """Put every Phased module into its state of a late epoch (e.g. ProtoPNet's joint training,
    backbone trainable), the phase most epochs of a run spend in."""
    training_hooks(model).start_epoch(JOINT_EPOCH, JOINT_EPOCH + 1)


def training_hooks(model: nn.Module):
    """What ``fit`` adds to training for this model (default settings): its TrainingHooks."""
    from whitebox.training.hooks import Hooks
    from whitebox.training.settings import TrainSettings

    return Hooks(model, TrainSettings())


def build_model(model_name: str, model_args: dict, image_size: int, device: torch.device,
                n_classes: int = N_CLASSES) -> nn.Module:
    """The classifier as ``whitebox train`` builds it for a pretrained backbone (ImageNet
    normalisation; random weights), on ``device``, channels_last, train mode, joint phase."""
    from whitebox.data.weights import IMAGENET_MEAN, IMAGENET_STD
    from whitebox.models import build_classifier

    torch.manual_seed(SEED)
    model = build_classifier(model_name, n_classes, IMAGENET_MEAN, IMAGENET_STD,
                             image_size=image_size, **model_args)
    model = model.to(device).to(memory_format=torch.channels_last).train()
    joint_phase(model)
    return model


def make_optimizer(model: nn.Module, lr: float = LR) -> torch.optim.Optimizer:
    """Adam over the parameter groups ``fit`` builds (the Phased modules' ``lr_scale`` applied)."""
    from whitebox.training.schedule import make_optimizer as named_optimizer

    optimizer = named_optimizer(training_hooks(model).parameter_groups(model), name="adam", lr=lr)
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    return optimizer


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One training step as ``fit`` takes it on ``images`` (uint8, on the model's device); returns
    the (detached) loss."""
    from whitebox.augmentations import augment_batch

    hooks = training_hooks(model)
    batch = images.float().div_(255)
    batch = augment_batch(batch.contiguous(memory_format=torch.channels_last), ["hflip"], generator)
    _, loss, _ = hooks.loss(model, batch, labels, label_smoothing=0.0)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    hooks.after_step(1.0)
    return loss.detach()


def synthetic_batch(shape: StepShape, device: torch.device, n_classes: int = N_CLASSES):
    """Random uint8 images ``(batch, 3, size, size)`` and labels, on ``device`` (seeded)."""
    generator = torch.Generator().manual_seed(SEED)
    images = torch.randint(0, 256, (shape.batch, 3, shape.image_size, shape.image_size),
                           dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, n_classes, (shape.batch,), generator=generator)
    return images.to(device), labels.to(device)


def images_per_second(batch: int, seconds_per_step: float) -> float:
    """Training throughput of steps of ``batch`` images taking ``seconds_per_step`` each."""
    if seconds_per_step <= 0:
        raise ValueError(f"seconds per step must be > 0, got {seconds_per_step}")
    return batch / seconds_per_step


# --- timing ------------------------------------------------------------------------------------

def _stepper(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    """One training step of ``model``, waiting for the GPU to finish it."""
    optimizer = make_optimizer(model)
    generator = torch.Generator().manual_seed(SEED)
    cuda = images.device.type == "cuda"

    def run() -> None:
        train_step(model, optimizer, images, labels, generator)
        if cuda:
            torch.cuda.synchronize()

    return run


def _peak_bytes(step: Callable[[], None], resident_before: int) -> int:
    """Peak CUDA memory of one (warm) step beyond what was allocated before its model was built."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step()
    return torch.cuda.max_memory_allocated() - resident_before


def time_group(baseline: str, others: tuple[str, ...], variants: dict[str, tuple[str, dict]],
               shape: StepShape, device: torch.device, device_label: str, repeats: int) -> list[Measurement]:
    """Step ratios of ``others`` over ``baseline`` and every model's throughput (and peak memory)."""
    images, labels = synthetic_batch(shape, device)
    cuda = device.type == "cuda"
    steps: dict[str, Callable[[], None]] = {}
    peak_gib: dict[str, float] = {}
    n_params: dict[str, int] = {}
    for name in (baseline, *others):
        resident = torch.cuda.memory_allocated() if cuda else 0
        model_name, model_args = variants[name]
        model = build_model(model_name, model_args, shape.image_size, device)
        n_params[name] = sum(p.numel() for p in model.parameters())
        steps[name] = _stepper(model, images, labels)
        if cuda:  # after a first step (Adam's state exists), measured on the second
            steps[name]()
            peak_gib[name] = _peak_bytes(steps[name], resident) / 2**30
    cores, times, per_attempt, calls = timed_group(steps, repeats)
    ratios = ratios_to(times, baseline)
    median_s = {name: statistics.median(series) for name, series in times.items()}
    size = f"batch {shape.batch} {shape.image_size}x{shape.image_size}"
    common = {"batch": shape.batch, "image_size": shape.image_size, "device": device_label,
              "repeats": repeats, "threads": torch.get_num_threads(), "other_cores": cores,
              "other_cores_per_attempt": per_attempt}

    results = []
    for name in others:
        ratio = statistics.median(ratios[name])
        limit = None if cuda else CPU_RATIO_LIMITS[name]
        results.append(Measurement(
            f"cub: {name} / {baseline}, step", ratio, "x", None if limit is None else "<", limit,
            note=f"{size}, joint phase, fwd+bwd+Adam; {1000 * median_s[name]:.4g} vs "
                 f"{1000 * median_s[baseline]:.4g} ms, median of {repeats}" + busy_note(cores),
            details={**common, "experiment": name, "baseline": baseline, "ratios": ratios[name],
                     "seconds_per_step": {"model": times[name], "baseline": times[baseline]},
                     "steps_per_round": {"model": calls[name], "baseline": calls[baseline]}}))
    for name in (baseline, *others):
        memory = f"; peak {peak_gib[name]:.2f} GiB" if name in peak_gib else ""
        results.append(Measurement(
            f"cub: {name} training throughput", images_per_second(shape.batch, median_s[name]), "img/s",
            note=f"{device_label}, {size}, {n_params[name] / 1e6:.1f}M params{memory}" + busy_note(cores),
            details={**common, "experiment": name, "model": variants[name][0],
                     "model_args": variants[name][1], "n_parameters": n_params[name],
                     "seconds_per_step": times[name], "steps_per_round": calls[name],
                     "peak_memory_gib": peak_gib.get(name)}))
    return results


# --- the part ----------------------------------------------------------------------------------

def measure(quick: bool = False) -> list[Measurement]:
    """The ResNet34 group (baseline, ProtoPNet, flexible parts), then the BagNet-33 group."""
    from whitebox.config import load_config
    from whitebox.training.device import device_name, resolve_device

    repeats = 5 if quick else 7
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as `whitebox train` runs
    device = resolve_device("auto")
    shape = step_shape(device.type, quick)
    variants = cub_variants(load_config(CONFIG))
    label = device_name(device)
    results: list[Measurement] = []
    with warnings.catch_warnings():  # warn_only: one warning per non-deterministic CUDA op
        warnings.filterwarnings("ignore", message=".*deterministic", category=UserWarning)
        for baseline, others in GROUPS.items():
            results += time_group(baseline, others, variants, shape, device, label, repeats)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return results
