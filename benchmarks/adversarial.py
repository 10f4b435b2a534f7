"""What adversarial training costs over standard training of the same model (`--only adversarial`).

Every robust twin of config.yaml (an experiment with ``training.adversarial`` whose spec is another
experiment's plus that key, e.g. lenet_unconstrained_robust of lenet_unconstrained) on a CIFAR
dataset: one ``fit`` epoch of each on the same N train images (2048; 512 with ``--quick``), with the
experiment's own training block, 2 torch threads and deterministic algorithms on as ``whitebox
train`` runs, after a warm-up batch each; the two take turns (A B, B A, ...) for 3 rounds and the
value is the median of the per-round ratios of the epoch times. Each PGD step is a forward and a
backward pass to the input in eval mode, less than a training step (no weight gradients, no
optimiser step), so the ratio should stay below 1 + steps; a MISS means the attack costs more.
"""

from __future__ import annotations

import functools
import statistics

import torch

from benchmarks.report import Measurement
from benchmarks.stages import (
    CONFIG,
    THREADS,
    Contention,
    _fit_seconds,
    build_model,
    busy_note,
    experiment_data,
    interleave,
    load_base,
    paired_ratios,
    split_sizes,
)

ROUNDS = 3

# --- pure helpers (tests/test_bench_adversarial.py) ------------------------------------------------


def robust_twins(specs: dict) -> list[tuple[str, str]]:
    """``(standard, robust)`` pairs of run specs (name -> RunSpec), in ``specs``' order: ``robust``
    trains with ``training.adversarial`` and is otherwise ``standard``'s spec."""
    def key(spec, training: dict) -> tuple:
        return (spec.dataset, spec.source, spec.classes, spec.model, spec.model_args, spec.pretrained,
                sorted(training.items()))

    pairs = []
    for robust, spec in specs.items():
        if "adversarial" not in spec.training:
            continue
        plain = {k: v for k, v in spec.training.items() if k != "adversarial"}
        pairs += [(standard, robust) for standard, other in specs.items()
                  if standard != robust and key(other, other.training) == key(spec, plain)]
    return pairs


def cost_limit(adversarial: dict) -> float:
    """The target of the epoch-time ratio: 1 + PGD steps (each step costs less than a training step)."""
    return 1.0 + adversarial["steps"]


# --- timing ----------------------------------------------------------------------------------------

def epoch_ratio(standard, robust, data, n_classes: int, source: str) -> Measurement:
    """The robust twin's epoch time over the standard one's, same data and process, interleaved."""
    from whitebox.training import TrainSettings

    train = data.train
    fns, settings = {}, {}
    for spec in (robust, standard):
        settings[spec.name] = TrainSettings(**{**spec.training, "epochs": 1})
        model = build_model(spec, data, n_classes)
        warm = settings[spec.name].batch_size
        _fit_seconds(model, train.images[:warm], train.labels[:warm], data.test, settings[spec.name])
        fns[spec.name] = functools.partial(_fit_seconds, model, train.images, train.labels, data.test,
                                           settings[spec.name])
    with Contention() as contention:
        times = interleave(fns, ROUNDS)
    ratios = paired_ratios(times[robust.name], times[standard.name])
    adversarial = settings[robust.name].adversarial
    seconds = {name: statistics.median(series) for name, series in times.items()}
    return Measurement(
        f"adversarial: {robust.name} / {standard.name}, epoch", statistics.median(ratios), "x", "<",
        cost_limit(adversarial),
        note=f"PGD {adversarial['steps']} steps, eps {adversarial['eps']:g}; {len(train)} imgs, "
             f"{seconds[robust.name]:.3g} vs {seconds[standard.name]:.3g} s, median of {ROUNDS}; "
             f"{source}" + busy_note(contention.cores),
        details={"standard": standard.name, "robust": robust.name, "adversarial": adversarial,
                 "n_train": len(train), "seconds": times, "ratios": ratios, "rounds": ROUNDS,
                 "threads": THREADS, "source": source, "other_cores": contention.cores},
    )


# --- the part --------------------------------------------------------------------------------------

def measure(quick: bool = False) -> list[Measurement]:
    """The epoch-time ratio of every robust twin on a CIFAR dataset."""
    from whitebox.config import experiment_spec, load_config

    n_train = 512 if quick else 2048
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as `whitebox train` runs
    config = load_config(CONFIG)
    specs = {name: experiment_spec(config, name) for name in config["experiments"]}
    base, source = None, ""
    results = []
    for standard, robust in robust_twins(specs):
        spec = specs[robust]
        try:
            n_classes, _, _ = split_sizes(config, spec.dataset)
        except KeyError:
            results.append(Measurement(f"adversarial: {robust} / {standard}, epoch", None, "x",
                                       note=f"not timed: base dataset {spec.base_dataset} unknown here"))
            continue
        if base is None:
            base, source = load_base(n_train)
        data = experiment_data(base, spec.classes, n_train)
        results.append(epoch_ratio(specs[standard], spec, data, n_classes, source))
    return results
