"""What the gradient metrics cost beside training, per CPU experiment of config.yaml.

For every experiment without ``gpu: true`` (the CUB stage is left out) the classifier is built
and trained as ``benchmarks/stages.py`` does it (the experiment's ``training:`` block, 2 torch
threads, best of 2 epochs over 1024 train images after a warm-up batch, scaled to the full
train split by its number of steps). Then, in the same process and on that trained model, one
``whitebox.explain.metrics.gradient_metrics`` call is timed (best of 2) with config.yaml's
``gradient_metrics:`` block on 1 torch thread, as the pipeline's ``gradient_metrics`` rule runs
it: the first ``n_images`` test images as float / 255, ``n_noise`` images of
``whitebox.explain.gaussian_noise`` and, for an experiment with a ``random_label_twin``, a
second model of the twin's architecture as ``twin``. The value of a line is
``metric_s / (epochs x epoch_s)`` in percent: the metrics' share of the experiment's whole
training (``training.epochs`` epochs). Target: < 5 %. The deletion and insertion curves
(``whitebox.explain.faithfulness``), part of that call, are also timed alone (``curves_s``,
best of as many calls) and their share given in the note. ``--quick``: three small experiments
(``QUICK_EXPERIMENTS``), 512 train images, one epoch and one call each.
"""

from __future__ import annotations

import time

import torch

from benchmarks import stages
from benchmarks.report import Measurement

LIMIT_PERCENT = 5.0  # metrics at most 5 % of the experiment's training
METRIC_THREADS = 1  # threads of the gradient_metrics rule (workflow/rules/evaluate.smk)
QUICK_EXPERIMENTS = ("directional", "positive_lenet", "mlp_mnist")  # small; two have a twin
SHARED_DATA = stages.REPO.parent / "shared" / "data"  # MNIST/raw/ of torchvision's layout
PREFIX = "metrics: "


# --- pure helpers (tests/test_bench_metrics.py) -------------------------------------------------

def cpu_experiments(config: dict) -> list[str]:
    """Names of the experiments not marked ``gpu: true``, in config order."""
    return [name for name, entry in config["experiments"].items() if not entry.get("gpu")]


def quick_experiments(names: list[str]) -> list[str]:
    """The ``QUICK_EXPERIMENTS`` among ``names`` (in their order), else the first three."""
    chosen = [name for name in names if name in QUICK_EXPERIMENTS]
    return chosen or names[:3]


def cost_ratio(metric_s: float, epoch_s: float, epochs: int) -> float:
    """The metrics' seconds over those of ``epochs`` training epochs of ``epoch_s`` each."""
    return metric_s / (epochs * epoch_s)


def worst(measurements: list[Measurement]) -> Measurement | None:
    """The summary line: the largest share among the measured experiments (None if none)."""
    measured = [m for m in measurements if m.value is not None]
    if not measured:
        return None
    top = max(measured, key=lambda m: m.value)
    return Measurement(f"{PREFIX}worst metrics / training", top.value, "%", op="<", limit=LIMIT_PERCENT,
                       note=f"{top.details['experiment']}, of {len(measured)} experiments",
                       details={"experiment": top.details["experiment"],
                                "n_experiments": len(measured)})


# --- one experiment -----------------------------------------------------------------------------

def _name(spec) -> str:
    return f"{PREFIX}{spec.name} metrics / training ({spec.dataset})"


def experiment_cost(spec, data, n_full_train: int, settings: dict, rounds: int = 1,
                    twin_spec=None, source: str = "") -> Measurement:
    """Seconds of one training epoch (scaled to ``n_full_train`` images) and of one
    ``gradient_metrics`` call on the trained model; the value is the metrics' share of the whole
    training in percent. ``data`` is the experiment's dataset (train split: the images timed);
    ``settings`` is config.yaml's ``gradient_metrics:`` block; ``twin_spec`` the spec of the
    experiment's ``random_label_twin`` (None without one); ``rounds``: best of that many each."""
    from whitebox.explain.faithfulness import deletion_insertion
    from whitebox.explain.gradients import target_gradients
    from whitebox.explain.metrics import evaluation_set, gradient_metrics, saliency_map
    from whitebox.layers.base import growing_layers
    from whitebox.training import TrainSettings

    threads = torch.get_num_threads()
    train_settings = TrainSettings(**{**spec.training, "epochs": 1})
    epochs = TrainSettings.from_config(spec.training).epochs
    n_classes = len(data.classes)
    try:
        torch.set_num_threads(stages.THREADS)
        model = stages.build_model(spec, data, n_classes)
        epoch_timed, train_cores = stages.timed_epochs(model, data, train_settings, rounds)
        epoch_s = stages.per_epoch_seconds(min(epoch_timed), len(data.train), n_full_train,
                                           train_settings.batch_size)
        # Same architecture, other weights: the comparison costs the same whatever they are.
        twin = stages.build_model(twin_spec, data, n_classes, seed=stages.SEED + 1) if twin_spec else None

        images, labels, noise = evaluation_set(
            data.test.images, data.test.labels,
            **{key: settings[key] for key in ("n_images", "n_noise", "noise_std", "noise_seed")})
        torch.set_num_threads(METRIC_THREADS)
        saliency = saliency_map(target_gradients(model, images, labels))
        metric_timed, curves_timed = [], []
        with stages.Contention() as contention:
            for _ in range(rounds):
                start = time.perf_counter()
                result = gradient_metrics(model, images, labels, noise,
                                          max_classes=settings["max_classes"],
                                          cascade_steps=settings["cascade_steps"],
                                          curve_steps=settings["curve_steps"], twin=twin,
                                          seed=stages.SEED)
                metric_timed.append(time.perf_counter() - start)
                start = time.perf_counter()
                deletion_insertion(model, images, labels, saliency,
                                   baseline=images.mean(dim=(0, 2, 3)),
                                   steps=settings["curve_steps"], seed=stages.SEED)
                curves_timed.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    metric_s, curves_s = min(metric_timed), min(curves_timed)
    ratio = cost_ratio(metric_s, epoch_s, epochs)
    curves_ratio = cost_ratio(curves_s, epoch_s, epochs)
    slots = sum(layer.n_units() for layer in growing_layers(model))
    cores = max((c for c in (train_cores, contention.cores) if c is not None), default=None)
    note = (f"metrics {metric_s:.2f} s ({METRIC_THREADS} thread) vs {epochs} x {epoch_s:.1f} s/epoch "
            f"({stages.THREADS} threads, {len(data.train)} of {n_full_train} imgs timed); "
            f"curves {curves_s:.2f} s, {100 * curves_ratio:.2f} %")
    if twin_spec is not None:
        note += f"; twin {twin_spec.name}"
    if slots:
        note += f"; {slots} slots after the timed epoch"
    return Measurement(
        _name(spec), 100 * ratio, "%", op="<", limit=LIMIT_PERCENT, note=note + stages.busy_note(cores),
        details={"experiment": spec.name, "model": spec.model, "dataset": spec.dataset,
                 "metric_s": metric_s, "epoch_s": epoch_s, "epochs": epochs, "ratio": ratio,
                 "metric_timed_s": metric_timed, "epoch_timed_s": epoch_timed,
                 "curves_s": curves_s, "curves_ratio": curves_ratio,
                 "curves_timed_s": curves_timed,
                 "n_timed": len(data.train), "n_full_train": n_full_train,
                 "batch_size": train_settings.batch_size, "settings": dict(settings),
                 "twin": twin_spec.name if twin_spec is not None else None, "slots": slots,
                 "n_images": result["n_images"], "n_noise": result["n_noise"],
                 "n_classes_used": result["n_classes_used"],
                 "label_randomisation": result["label_randomisation"],
                 "train_threads": stages.THREADS, "metric_threads": METRIC_THREADS,
                 "source": source, "other_cores": cores},
    )


# --- data ---------------------------------------------------------------------------------------

def load_mnist():
    """The genuine MNIST of ../shared/data (read in place), or None; and a word on which."""
    from whitebox.data import load_torchvision

    if not (SHARED_DATA / "MNIST" / "raw").is_dir():
        return None, f"no MNIST in {SHARED_DATA}"
    return load_torchvision("mnist", SHARED_DATA), "../shared/data MNIST"


def load_bases(bases: set[str], n_train: int) -> dict[str, tuple[object, str]]:
    """``base -> (dataset or None, source)`` for the base datasets this machine has offline."""
    loaders = {"cifar10": lambda: stages.load_base(n_train), "mnist": load_mnist}
    return {base: loaders[base]() if base in loaders else (None, f"base dataset {base} unknown here")
            for base in bases}


def full_train_size(config: dict, spec, base) -> int:
    """Train images of the experiment's full split: as stages.py counts them for CIFAR-10 and its
    subsets (also when the synthetic stand-in is used), else those of the loaded real data."""
    try:
        return stages.split_sizes(config, spec.dataset)[1]
    except KeyError:
        return len(base.subset(spec.classes).train if spec.classes else base.train)


# --- the part -----------------------------------------------------------------------------------

def measure(quick: bool = False) -> list[Measurement]:
    """One line per CPU experiment (its metrics' share of its training), then the worst share."""
    from whitebox.config import experiment_spec, load_config

    n_train, rounds = (512, 1) if quick else (1024, 2)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as `whitebox train` runs
    config = load_config(stages.CONFIG)
    names = cpu_experiments(config)
    if quick:
        names = quick_experiments(names)
    specs = [experiment_spec(config, name) for name in names]
    bases = load_bases({spec.base_dataset for spec in specs}, n_train)

    results: list[Measurement] = []
    cache: dict[str, object] = {}
    for spec in specs:
        base, source = bases[spec.base_dataset]
        if base is None:
            results.append(Measurement(_name(spec), None, "%", note=f"not timed: {source}"))
            continue
        if spec.dataset not in cache:
            cache[spec.dataset] = stages.experiment_data(base, spec.classes, n_train)
        twin_name = config["experiments"][spec.name].get("random_label_twin")
        twin_spec = experiment_spec(config, twin_name) if twin_name else None
        results.append(experiment_cost(spec, cache[spec.dataset], full_train_size(config, spec, base),
                                       config["gradient_metrics"], rounds, twin_spec, source))
    summary = worst(results)
    if summary is not None:
        summary.note += "; " + ", ".join(f"{base}: {source}" for base, (_, source) in sorted(bases.items()))
        results.append(summary)
    return results
