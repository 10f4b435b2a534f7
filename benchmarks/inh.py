"""Incremental Neural Hashing costs: greedy set cover, growth per batch, a full MNIST run.

* greedy set cover on a 10,000 x 10,000 coverage matrix (the size of a large growth step);
* growth + threshold estimation of one batch as a share of one training step, measured on
  the same layer (about 1,000 slots, batch 256) in the same process;
* the full ``inh_mnist`` run of config.yaml on 2 CPU cores (needs ../shared/data MNIST).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.report import Measurement

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data"


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def set_cover_time() -> Measurement:
    """Greedy set cover on 10k candidates x 10k elements (density 0.1 %)."""
    from whitebox.layers.set_cover import greedy_set_cover

    coverage = torch.rand(10_000, 10_000, generator=torch.Generator().manual_seed(0)) < 0.001
    chosen = []
    seconds = _best_of(1, lambda: chosen.append(greedy_set_cover(coverage)))
    return Measurement("greedy set cover 10k x 10k", seconds, "s",
                       note=f"{chosen[0].numel()} sets chosen")


def growth_share() -> Measurement:
    """Growth + threshold estimation of one batch vs one whole training step of the layer."""
    from whitebox.layers import IncrementalNeuralHashing
    from whitebox.layers.hashing import precision_thresholds

    g = torch.Generator().manual_seed(0)
    layer = IncrementalNeuralHashing(784, 10)
    layer._set_slots(F.normalize(torch.randn(1000, 784, generator=g), dim=1),
                     torch.arange(10).repeat(100), torch.full((1000,), 0.1))
    x = torch.rand(256, 784, generator=g)
    labels = torch.randint(0, 10, (256,), generator=g)

    def growth() -> None:
        with torch.no_grad():
            unit = F.normalize(x, dim=1)
            precision_thresholds(unit @ layer.weight.t(), layer.slot_labels, labels)
            layer.add_slots(unit[:64], labels[:64], reference=(unit, labels))
            layer._set_slots(layer.weight.detach()[:1000], layer.slot_labels[:1000],
                             layer.thresholds[:1000])

    def step() -> None:
        layer.train()
        layer.set_targets(labels)
        loss = F.cross_entropy(layer(x), labels)
        layer.set_targets(None)
        loss.backward()
        layer.sgd_step()
        layer._set_slots(layer.weight.detach()[:1000], layer.slot_labels[:1000],
                         layer.thresholds[:1000])

    growth_s, step_s = _best_of(20, growth), _best_of(20, step)
    return Measurement("INH growth + thresholds / training step", 100 * growth_s / step_s, "%",
                       note=f"growth {1e3 * growth_s:.1f} ms, step {1e3 * step_s:.1f} ms "
                            "(1000 slots, batch 256, 64 unmatched)")


def full_mnist_run() -> Measurement:
    """config.yaml's inh_mnist trained on all 60k MNIST images on this machine's CPU."""
    from tempfile import TemporaryDirectory

    from whitebox.config import experiment_spec, load_config
    from whitebox.data import load_prepared, mean_std, prepare_dataset
    from whitebox.models import build_classifier
    from whitebox.training import TrainSettings, fit

    if not (SHARED_MNIST / "MNIST").is_dir():
        return Measurement("INH full MNIST run", None, "s", note=f"no MNIST in {SHARED_MNIST}")
    spec = experiment_spec(load_config(REPO / "config.yaml"), "inh_mnist")
    with TemporaryDirectory() as tmp:
        tensors = Path(tmp) / "tensors.pt"
        prepare_dataset("mnist", {"source": "torchvision"}, Path(tmp), tensors, mirror=SHARED_MNIST)
        data = load_prepared(tensors)
    torch.manual_seed(0)
    mean, std = mean_std(data.train)
    model = build_classifier("inh", 10, mean, std, image_size=28, **spec.model_args)
    records, seconds = fit(model, data.train.images, data.train.labels, data.test.images,
                           data.test.labels, TrainSettings(**spec.training), seed=0)
    return Measurement("INH full MNIST run (inh_mnist)", seconds, "s",
                       note=f"{records[-1].test_accuracy:.2f} % with {records[-1].slots} slots, "
                            f"{len(records)} epochs")


def measure(quick: bool = False) -> list[Measurement]:
    """All INH measurements (``quick`` skips the full MNIST run)."""
    torch.set_num_threads(2)
    results = [set_cover_time(), growth_share()]
    if not quick:
        results.append(full_mnist_run())
    return results
