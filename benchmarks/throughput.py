"""Training throughput of the Directional model on CPU: whitebox's loop vs plain PyTorch.

Ours: ``whitebox.training.fit`` with the split as one uint8 tensor and batched flips.
Baseline: what a torchvision tutorial does: a Dataset holding uint8 HWC arrays, each item
turned into a PIL image and run through RandomHorizontalFlip -> ToTensor -> Normalize,
batched by ``torch.utils.data.DataLoader``. Same model, optimiser, batch size, images and
torch thread count; both are warmed up before timing.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision import transforms

from benchmarks.report import Measurement
from whitebox.data import Dataset, Split, load_imagefolder, make_synthetic, mean_std
from whitebox.models import build_classifier, build_model
from whitebox.training import TrainSettings, fit

CIFAR_JPEG = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"
CLASSES = ["airplane", "automobile"]
MODEL = "directional"
BATCH_SIZE = 128
LR = 1e-3
THREADS = 2
SEED = 0
WORKERS = (0, 2)  # DataLoader worker processes tried for the baseline


def load_images(n_train: int) -> tuple[Dataset, str]:
    """airplane+automobile of the CIFAR-10 JPEG stand-in when present, else synthetic shapes."""
    if CIFAR_JPEG.is_file():
        with contextlib.redirect_stderr(io.StringIO()):  # no decoding progress bar in the table
            dataset = load_imagefolder("cifar10", CIFAR_JPEG).subset(CLASSES)
        source = "cifar10-jpeg airplane+automobile"
    else:
        dataset = make_synthetic("synthetic", CLASSES, train_per_class=-(-n_train // 2),
                                 test_per_class=128)
        source = "synthetic shapes (no ../shared/data/cifar10-jpeg.zip)"
    train = dataset.train.shuffled(SEED)
    train = Split(train.images[:n_train].contiguous(), train.labels[:n_train].contiguous())
    return Dataset(dataset.name, dataset.classes, train, dataset.test), source


class HWCImages(torch.utils.data.Dataset):
    """torchvision's CIFAR10 in miniature: uint8 (N, H, W, C) array, PIL image per item."""

    def __init__(self, split: Split, transform) -> None:
        self.data = np.ascontiguousarray(split.images.permute(0, 2, 3, 1).numpy())
        self.targets = split.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = Image.fromarray(self.data[index])
        return self.transform(image), self.targets[index]


def train_ours(dataset: Dataset, epochs: int) -> float:
    """Seconds for ``epochs`` of whitebox's ``fit`` (Directional, config.yaml's settings).

    The test split passed to ``fit`` is a few images only, so the per-epoch evaluation
    does not count against the loop.
    """
    mean, std = mean_std(dataset.train)
    torch.manual_seed(SEED)
    model = build_classifier(MODEL, dataset.num_classes, mean, std)
    settings = TrainSettings(epochs=epochs, batch_size=BATCH_SIZE,
                             optimizer={"name": "adam", "lr": LR}, augment=["hflip"])
    test = dataset.test
    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):  # fit logs one line per epoch
        fit(model, dataset.train.images, dataset.train.labels, test.images[:16], test.labels[:16],
            settings, seed=SEED)
    return time.perf_counter() - start


def train_baseline(dataset: Dataset, epochs: int, num_workers: int) -> float:
    """Seconds for ``epochs`` of a plain PyTorch loop: DataLoader + per-image PIL transforms."""
    mean, std = mean_std(dataset.train)
    transform = transforms.Compose([transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                                    transforms.Normalize(mean, std)])
    loader = DataLoader(HWCImages(dataset.train, transform), batch_size=BATCH_SIZE, shuffle=True,
                        num_workers=num_workers)
    torch.manual_seed(SEED)
    model = build_model(MODEL, n_classes=dataset.num_classes, in_channels=dataset.in_channels)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    start = time.perf_counter()
    for _ in range(epochs):
        _baseline_epoch(model, optimizer, loader)
    return time.perf_counter() - start


def _baseline_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> float:
    """One epoch of the textbook loop; returns the mean training loss."""
    model.train()
    loss_sum = 0.0
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * labels.numel()
    return loss_sum / len(loader.dataset)


def warm_up(dataset: Dataset) -> None:
    """One short pass of both paths so one-time costs (allocator, kernels) are not timed."""
    few = Split(dataset.train.images[:4 * BATCH_SIZE], dataset.train.labels[:4 * BATCH_SIZE])
    small = Dataset(dataset.name, dataset.classes, few, dataset.test)
    train_ours(small, epochs=1)
    train_baseline(small, epochs=1, num_workers=0)


def measure(quick: bool = False) -> list[Measurement]:
    """Images/s of ours and of the baselines (0 and 2 DataLoader workers), and their ratio.

    The paths take turns, one epoch each, for a few rounds, and each keeps its best epoch:
    a burst of load from another process then cannot favour one path over the other.
    """
    n_train, rounds = (2048, 1) if quick else (10_000, 3)
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)  # as `whitebox train` runs
    dataset, source = load_images(n_train)
    warm_up(dataset)

    paths = {"ours": lambda: train_ours(dataset, epochs=1)}
    paths |= {workers: lambda w=workers: train_baseline(dataset, 1, w) for workers in WORKERS}
    seconds: dict = {name: [] for name in paths}
    for _ in range(rounds):
        for name, train in paths.items():
            seconds[name].append(train())
    rate = {name: len(dataset.train) / min(times) for name, times in seconds.items()}

    best_workers = max(WORKERS, key=rate.get)
    epochs = f"{rounds} epochs" if rounds > 1 else "1 epoch"
    setup = f"{len(dataset.train)} imgs, best of {epochs}, {THREADS} threads, {source}"
    results = [Measurement("train Directional: ours (uint8 tensor, batched flips)", rate["ours"],
                           "img/s", note=setup, details={"epoch_s": seconds["ours"]})]
    for workers in WORKERS:
        results.append(Measurement(f"train Directional: DataLoader+PIL, {workers} workers", rate[workers],
                                   "img/s", note="per-image flip/ToTensor/Normalize",
                                   details={"epoch_s": seconds[workers]}))
    results.append(Measurement("train Directional: ours / best baseline",
                               rate["ours"] / rate[best_workers], "x", op=">", limit=1.0,
                               note=f"best baseline: {best_workers} workers",
                               details={"n_train": len(dataset.train), "rounds": rounds,
                                        "threads": THREADS, "source": source}))
    return results
