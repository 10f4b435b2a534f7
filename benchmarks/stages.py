"""What each stage of the log costs on a CPU, and what its special layers cost over their baselines.

* Per experiment of config.yaml that has a ``family`` (the paper's stage tables): the parameter
  count of its classifier and the seconds one training epoch takes on 2 CPU threads, timed with
  ``whitebox.training.fit`` (1 epoch, the experiment's batch size, optimiser, augmentation and
  tau) on N train images after one warm-up batch, then scaled to the full split by its number
  of steps. INFO lines: there is no target, they say what a full run will cost.
* Overheads, as ratios against a baseline timed in the same process, interleaved
  (A, B, B, A, ...) so that drift in the machine's speed hits both alike; the value is the
  median of the per-round ratios:
  - GumbelConv2d vs nn.Conv2d: the ``gumbel_simple`` model with ``conv="gumbel"`` vs
    ``conv="standard"`` (one training step as ``fit`` does it), and the layer alone
    (forward + backward) at the input shapes it sees in ``gumbel2`` and ``gumbel_simple``;
  - IterNorm vs BatchNorm1d on the representation layer: ``positive_lenet`` with
    ``representation_norm="iternorm"`` vs ``"bn"``, and the layer alone on ``(128, 120)``.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.report import Measurement

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config.yaml"
CIFAR_JPEG = REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"
THREADS = 2
SEED = 0
BATCH = 128  # overhead measurements: one training batch of the log's size
# Base datasets the stages train on: classes, train and test images per class.
BASE_SPLITS = {"cifar10": {"classes": 10, "train_per_class": 5000, "test_per_class": 1000}}
EVAL_IMAGES = 1000  # test images timed for the per-epoch evaluation estimate
BUSY_CORES = 0.25  # other processes' CPU use (cores) during a timing that gets it flagged
BUSY_RETRIES = 2  # overhead ratios: extra attempts when the machine was busy

# Targets of the overhead ratios (the README explains each).
GUMBEL_MODEL_LIMIT = 1.5  # gumbel_simple step, GumbelConv2d / Conv2d
# The layer alone, forward + backward: where its output is 1x1 (gumbel2) the per-step work on the
# weights is as large as the convolution itself; on a 16x16 map it is negligible.
GUMBEL_LAYER_LIMITS = {"gumbel2 conv3": 3.0, "gumbel_simple conv2": 1.5}
ITERNORM_MODEL_LIMIT = 1.5  # positive_lenet step, IterNorm / BatchNorm1d


# --- pure helpers (tests/test_bench_stages.py) ------------------------------------------------

def family_experiments(config: dict) -> list[str]:
    """Names of the experiments with a ``family`` key, in config order."""
    return [name for name, entry in config["experiments"].items() if entry.get("family")]


def split_sizes(config: dict, dataset: str) -> tuple[int, int, int]:
    """``(classes, train images, test images)`` of ``dataset`` (a base dataset or a subset of one).

    Raises KeyError for a base dataset this benchmark does not know the size of.
    """
    entry = config["datasets"][dataset]
    base = entry.get("subset_of", dataset)
    sizes = BASE_SPLITS[base]
    n_classes = len(entry["classes"]) if "subset_of" in entry else sizes["classes"]
    return n_classes, n_classes * sizes["train_per_class"], n_classes * sizes["test_per_class"]


def steps(n_images: int, batch_size: int) -> int:
    """Optimiser steps of one epoch over ``n_images`` (fit skips a last batch of one image)."""
    full, rest = divmod(n_images, batch_size)
    return full + (rest >= 2)


def per_epoch_seconds(seconds: float, n_timed: int, n_full: int, batch_size: int) -> float:
    """Scale ``seconds`` measured for an epoch over ``n_timed`` images to ``n_full`` images, by steps."""
    return seconds * steps(n_full, batch_size) / steps(n_timed, batch_size)


def paired_ratios(a: list[float], b: list[float]) -> list[float]:
    """Per-round ratios ``a[i] / b[i]`` of two interleaved series."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need two non-empty series of equal length, got {len(a)} and {len(b)}")
    return [x / y for x, y in zip(a, b, strict=True)]


def interleave(fns: dict[str, Callable[[], None]], repeats: int,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds of each function per round, ``repeats`` rounds; the order reverses every round
    (A B, B A, A B, ...) so neither function always runs first or right after the other."""
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = clock()
            fns[name]()
            times[name].append(clock() - start)
    return times


def calls_for(seconds_per_call: float, target_s: float, at_most: int = 10_000) -> int:
    """How many calls make one timed repeat last about ``target_s`` (at least 1)."""
    return max(1, min(at_most, math.ceil(target_s / max(seconds_per_call, 1e-9))))


def other_cores(machine_busy_s: float, own_s: float, wall_s: float) -> float:
    """Cores that other processes (and the hypervisor) kept busy over ``wall_s`` seconds, from the
    machine's busy CPU seconds and this process's own CPU seconds in that time."""
    return max(0.0, (machine_busy_s - own_s) / wall_s) if wall_s > 0 else 0.0


def busy_note(cores: float | None) -> str:
    """``"; BUSY: ..."`` for a note when other processes used ``BUSY_CORES`` or more, else ``""``."""
    if cores is None or cores < BUSY_CORES:
        return ""
    return f"; BUSY: other processes used {cores:.1f} cores, timing pessimistic"


# --- contention ------------------------------------------------------------------------------

def machine_busy_seconds() -> float | None:
    """CPU seconds all cores of the machine spent busy since boot (``/proc/stat``; None off Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Contention:
    """Context manager: ``cores`` other processes kept busy while the block ran (None if unknown).

    Two torch threads on a two-core machine that another process also uses wait for each other at
    every parallel region; small operations then slow down tenfold and more, so such a timing is
    flagged in its note rather than silently reported.
    """

    cores: float | None = None

    def __enter__(self) -> Contention:
        self._start = (machine_busy_seconds(), sum(os.times()[:2]), time.perf_counter())
        return self

    def __exit__(self, *exc) -> None:
        machine, own, wall = self._start
        now = machine_busy_seconds()
        if machine is not None and now is not None:
            self.cores = other_cores(now - machine, sum(os.times()[:2]) - own,
                                     time.perf_counter() - wall)


# --- data ------------------------------------------------------------------------------------

def load_base(n_train: int):
    """CIFAR-10 of the JPEG stand-in when ../shared/data has it, else synthetic shapes; and a word
    on which."""
    from whitebox.data import load_imagefolder, make_synthetic

    if CIFAR_JPEG.is_file():
        with contextlib.redirect_stderr(io.StringIO()):  # no decoding progress bar in the table
            return load_imagefolder("cifar10", CIFAR_JPEG), "cifar10-jpeg stand-in"
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dataset = make_synthetic("synthetic", classes, train_per_class=-(-n_train // 2),
                             test_per_class=EVAL_IMAGES // 2)
    return dataset, "synthetic shapes (no ../shared/data/cifar10-jpeg.zip)"


def experiment_data(base, classes: list[str] | None, n_train: int):
    """The experiment's classes of ``base``, train split shuffled and cut to ``n_train`` images."""
    from whitebox.data import Dataset, Split

    dataset = base.subset(classes) if classes else base
    train = dataset.train.shuffled(SEED)
    train = Split(train.images[:n_train].contiguous(), train.labels[:n_train].contiguous())
    test = dataset.test.shuffled(SEED)
    test = Split(test.images[:EVAL_IMAGES].contiguous(), test.labels[:EVAL_IMAGES].contiguous())
    return Dataset(dataset.name, dataset.classes, train, test)


# --- per-stage epoch time --------------------------------------------------------------------

def _fit_seconds(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, test, settings) -> float:
    """Training seconds of one ``fit`` epoch (its evaluation is on 16 test images only)."""
    from whitebox.training import fit

    with contextlib.redirect_stderr(io.StringIO()):  # fit logs one line per epoch
        _, seconds = fit(model, images, labels, test.images[:16], test.labels[:16], settings, seed=SEED)
    return seconds


def build_model(spec, dataset, n_classes: int, seed: int = SEED) -> nn.Module:
    """The experiment's classifier for ``n_classes``, normalised with ``dataset``'s train split and
    initialised from ``seed`` (as ``whitebox train`` builds it; no pretrained weights)."""
    from whitebox.data import mean_std
    from whitebox.models import build_classifier

    mean, std = mean_std(dataset.train)
    torch.manual_seed(seed)
    return build_classifier(spec.model, n_classes, mean, std, image_size=dataset.image_size,
                            **spec.model_args)


def timed_epochs(model: nn.Module, dataset, settings, rounds: int) -> tuple[list[float], float | None]:
    """Training seconds of ``rounds`` one-epoch fits over ``dataset.train`` after a warm-up batch,
    and the cores other processes kept busy meanwhile (``Contention``)."""
    train, test = dataset.train, dataset.test
    warm = settings.batch_size
    _fit_seconds(model, train.images[:warm], train.labels[:warm], test, settings)  # warm-up batch
    with Contention() as contention:
        timed = [_fit_seconds(model, train.images, train.labels, test, settings) for _ in range(rounds)]
    return timed, contention.cores


def stage_epoch(spec, dataset, n_classes: int, n_full_train: int, n_full_test: int, rounds: int,
                source: str) -> Measurement:
    """Seconds per training epoch of one experiment on the CPU, scaled to its full train split."""
    from whitebox.evaluation.accuracy import predict
    from whitebox.training import TrainSettings

    settings = TrainSettings(**{**spec.training, "epochs": 1})
    model = build_model(spec, dataset, n_classes)
    n_params = sum(p.numel() for p in model.parameters())
    train, test = dataset.train, dataset.test
    timed, cores = timed_epochs(model, dataset, settings, rounds)
    best = min(timed)
    epoch_s = per_epoch_seconds(best, len(train), n_full_train, settings.batch_size)

    start = time.perf_counter()
    predict(model, test.images, settings.eval_batch_size)
    eval_s = (time.perf_counter() - start) * n_full_test / len(test)

    rounds_note = f"best of {rounds}" if rounds > 1 else "1 round"
    return Measurement(
        f"stages: {spec.name} s/epoch ({spec.dataset}, CPU)", epoch_s, "s",
        note=f"{n_params:,} params; {len(train)} of {n_full_train} imgs timed, {rounds_note}"
             + busy_note(cores),
        details={"experiment": spec.name, "model": spec.model, "model_args": spec.model_args,
                 "dataset": spec.dataset, "n_parameters": n_params, "n_timed": len(train),
                 "n_full_train": n_full_train, "timed_s": timed, "batch_size": settings.batch_size,
                 "optimizer": settings.optimizer, "augment": settings.augment, "tau": settings.tau,
                 "eval_s_per_epoch": round(eval_s, 3), "n_full_test": n_full_test,
                 "epochs_configured": spec.training.get("epochs"),
                 "full_run_s": round((epoch_s + eval_s) * spec.training.get("epochs", 1), 1),
                 "threads": THREADS, "source": source, "other_cores": cores},
    )


# --- overheads -------------------------------------------------------------------------------

def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
               labels: torch.Tensor, generator: torch.Generator) -> None:
    """One step as ``fit`` does it on a CPU: uint8 -> float, channels_last, hflip, forward, cross
    entropy, backward, optimiser step, weight constraints."""
    from whitebox.augmentations import augment_batch
    from whitebox.layers.base import regularize

    batch = images.float().div_(255).contiguous(memory_format=torch.channels_last)
    batch = augment_batch(batch, ["hflip"], generator)
    loss = F.cross_entropy(model(batch), labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    regularize(model)


def _model_stepper(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                   steps_per_repeat: int) -> Callable[[], None]:
    model.to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(SEED)

    def run() -> None:
        for _ in range(steps_per_repeat):
            train_step(model, optimizer, images, labels, generator)

    return run


def _layer_stepper(layer: nn.Module, shape: tuple[int, ...], calls: int = 1) -> Callable[[], None]:
    """``calls`` forward + backward passes of ``layer`` (train mode) on a fixed random input that
    needs its gradient, as a layer inside a network does."""
    layer.train()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(SEED))
    if x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
        layer.to(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def run() -> None:
        for _ in range(calls):
            layer(x).square().mean().backward()
            x.grad = None
            layer.zero_grad(set_to_none=True)

    return run


def compare(name: str, fns: dict[str, Callable[[], None]], repeats: int, per: int, unit_label: str,
            op: str | None, limit: float | None, note: str, details: dict) -> Measurement:
    """Warm both up, time them interleaved, report the median per-round ratio first / second.

    When other processes kept ``BUSY_CORES`` or more busy meanwhile, the timing is repeated (up to
    ``BUSY_RETRIES`` times) and the least disturbed attempt is kept: the ratios are short to take,
    and a busy machine slows the variant with more small operations more.
    """
    (a, fa), (b, fb) = fns.items()
    for fn in (fa, fb, fa, fb):
        fn()
    attempts = []
    for _ in range(1 + BUSY_RETRIES):
        with Contention() as contention:
            times = interleave(fns, repeats)
        attempts.append((contention.cores, times))
        if contention.cores is None or contention.cores < BUSY_CORES:
            break
    cores, times = min(attempts, key=lambda attempt: attempt[0] or 0.0)
    ratios = paired_ratios(times[a], times[b])
    ms = {key: 1000 * statistics.median(values) / per for key, values in times.items()}
    return Measurement(
        name, statistics.median(ratios), "x", op=op, limit=limit,
        note=f"{note}; {ms[a]:.3g} vs {ms[b]:.3g} ms per {unit_label}, median of {repeats}"
             + busy_note(cores),
        details={**details, "ms_per_" + unit_label.replace(" ", "_"): ms, "ratios": ratios,
                 "seconds": times, "repeats": repeats, "per_repeat": per, "threads": THREADS,
                 "other_cores": cores, "other_cores_per_attempt": [c for c, _ in attempts]},
    )


def input_shape(model: nn.Module, layer: str, images: torch.Tensor) -> tuple[int, ...]:
    """The shape of what ``layer`` of ``model`` receives for ``images`` (a forward hook)."""
    seen: list[tuple[int, ...]] = []
    handle = model.get_submodule(layer).register_forward_hook(
        lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    with torch.no_grad():
        model.eval()(images.float().div(255))
    handle.remove()
    return seen[0]


def _calibrated(make: Callable[[int], Callable[[], None]], target_s: float) -> tuple[Callable[[], None], int]:
    """A stepper of ``make(calls)`` whose one run lasts about ``target_s``, and its ``calls``."""
    probe = make(5)
    probe()
    start = time.perf_counter()
    probe()
    calls = calls_for((time.perf_counter() - start) / 5, target_s)
    return make(calls), calls


def _model_step_ratio(name: str, model_name: str, variants: dict[str, nn.Module], x: torch.Tensor,
                      y: torch.Tensor, repeats: int, steps_per_repeat: int, limit: float) -> Measurement:
    """First variant's training step over the second's (fwd + bwd + Adam on one batch), same process."""
    steppers = {label: _model_stepper(model, x, y, steps_per_repeat) for label, model in variants.items()}
    return compare(name, steppers, repeats, steps_per_repeat, "step", "<", limit,
                   f"batch {BATCH}, fwd+bwd+Adam", {"model": model_name, "batch": BATCH})


def gumbel_overheads(images: torch.Tensor, labels: torch.Tensor, mean, std, repeats: int,
                     steps_per_repeat: int) -> list[Measurement]:
    """GumbelConv2d vs nn.Conv2d: the gumbel_simple model's step, and the layer alone."""
    from whitebox.layers import GumbelConv2d
    from whitebox.models import build_classifier

    def model(conv: str) -> nn.Module:
        torch.manual_seed(SEED)
        return build_classifier("gumbel_simple", 10, mean, std, conv=conv)

    x, y = images[:BATCH], labels[:BATCH] % 10
    results = [_model_step_ratio("stages: GumbelConv2d / Conv2d, gumbel_simple step", "gumbel_simple",
                                 {"gumbel": model("gumbel"), "conv2d": model("standard")}, x, y,
                                 repeats, steps_per_repeat, GUMBEL_MODEL_LIMIT)]

    torch.manual_seed(SEED)
    shapes = {"gumbel2 conv3": input_shape(build_classifier("gumbel2", 2, mean, std), "net.conv3", x),
              "gumbel_simple conv2": input_shape(model("gumbel"), "net.conv2", x)}
    layers = {"gumbel2 conv3": dict(in_channels=120, out_channels=60, kernel_size=3),
              "gumbel_simple conv2": dict(in_channels=64, out_channels=64, kernel_size=3, padding=1)}
    for where, shape in shapes.items():
        args = layers[where]
        if shape[1] != args["in_channels"]:
            raise RuntimeError(f"{where} receives {shape}, expected {args['in_channels']} channels")
        torch.manual_seed(SEED)
        gumbel, calls = _calibrated(lambda n, a=args, s=shape: _layer_stepper(GumbelConv2d(**a), s, n), 0.05)
        conv = _layer_stepper(nn.Conv2d(**args), shape, calls)
        size = "x".join(map(str, shape))
        results.append(compare(
            f"stages: GumbelConv2d / Conv2d, layer ({where})", {"gumbel": gumbel, "conv2d": conv},
            repeats, calls, "call", "<", GUMBEL_LAYER_LIMITS[where],
            f"{args['in_channels']}->{args['out_channels']} 3x3 on {size}, fwd+bwd",
            {"layer": args, "input_shape": shape}))
    return results


def iternorm_overheads(images: torch.Tensor, labels: torch.Tensor, mean, std, repeats: int,
                       steps_per_repeat: int) -> list[Measurement]:
    """IterNorm vs BatchNorm1d on the representation layer: positive_lenet's step, and the layer."""
    from whitebox.layers import IterNorm
    from whitebox.models import build_classifier

    def model(norm: str) -> nn.Module:
        torch.manual_seed(SEED)
        return build_classifier("positive_lenet", 3, mean, std, representation_norm=norm)

    x, y = images[:BATCH], labels[:BATCH] % 3
    results = [_model_step_ratio("stages: IterNorm / BatchNorm1d, positive_lenet step", "positive_lenet",
                                 {"iternorm": model("iternorm"), "bn": model("bn")}, x, y,
                                 repeats, steps_per_repeat, ITERNORM_MODEL_LIMIT)]

    shape = input_shape(model("iternorm"), "net.norm", x)
    torch.manual_seed(SEED)
    iternorm, calls = _calibrated(lambda n: _layer_stepper(IterNorm(shape[1], group_size=20), shape, n), 0.05)
    bn = _layer_stepper(nn.BatchNorm1d(shape[1], affine=False), shape, calls)
    results.append(compare(
        "stages: IterNorm / BatchNorm1d, layer", {"iternorm": iternorm, "bn": bn},
        repeats, calls, "call", None, None,
        f"{shape[1]} units, groups of 20, T=5 on {'x'.join(map(str, shape))}, fwd+bwd",
        {"input_shape": shape, "group_size": 20}))
    return results


# --- the part --------------------------------------------------------------------------------

def measure(quick: bool = False) -> list[Measurement]:
    """Epoch seconds and parameters of every stage, then the GumbelConv2d and IterNorm overheads."""
    from whitebox.config import experiment_spec, load_config
    from whitebox.data import mean_std

    n_train, rounds = (1024, 1) if quick else (4096, 2)
    repeats, steps_per_repeat = (5, 3) if quick else (9, 5)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as `whitebox train` runs
    config = load_config(CONFIG)
    base, source = load_base(n_train)

    results: list[Measurement] = []
    cache: dict[str, object] = {}
    for name in family_experiments(config):
        spec = experiment_spec(config, name)
        try:
            n_classes, n_full_train, n_full_test = split_sizes(config, spec.dataset)
        except KeyError:
            results.append(Measurement(f"stages: {name} s/epoch ({spec.dataset}, CPU)", None, "s",
                                       note=f"not timed: base dataset {spec.base_dataset} unknown here"))
            continue
        if spec.dataset not in cache:
            cache[spec.dataset] = experiment_data(base, spec.classes, n_train)
        results.append(stage_epoch(spec, cache[spec.dataset], n_classes, n_full_train, n_full_test,
                                   rounds, source))
    if results:
        results[0].note += f"; {source}"

    data = experiment_data(base, None, BATCH)
    mean, std = mean_std(data.train)
    images, labels = data.train.images, data.train.labels
    results += gumbel_overheads(images, labels, mean, std, repeats, steps_per_repeat)
    results += iternorm_overheads(images, labels, mean, std, repeats, steps_per_repeat)
    return results
