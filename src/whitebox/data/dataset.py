"""The in-memory dataset (uint8 image tensors + int64 labels) and its file format.

A prepared dataset is one ``torch.save`` file holding both splits, the class names
and the ``source`` config entry it came from (provenance). Training code moves the
tensors to the device once; nothing here decodes images per step.
"""

from __future__ import annotations

import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from whitebox.data.errors import DataError, one_line
from whitebox.io import save_torch

FORMAT = "whitebox.dataset/1"


@dataclass
class Split:
    """One split: ``images`` uint8 (N, C, H, W), ``labels`` int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 (N,) with N={self.images.shape[0]}, got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def shuffled(self, seed: int = 0) -> Split:
        """The same images in a fixed pseudo-random order (same on every machine)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        return Split(self.images[order], self.labels[order])

    def select(self, keep: torch.Tensor, relabel: torch.Tensor) -> Split:
        """Rows where ``keep`` is true, labels mapped through the lookup table ``relabel``."""
        return Split(self.images[keep].clone(), relabel[self.labels[keep]])


@dataclass
class Dataset:
    """A named dataset: class names (label i is ``classes[i]``) and two splits."""

    name: str
    classes: list[str]
    train: Split
    test: Split

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.train.images.shape[1])

    @property
    def image_size(self) -> int:
        """Image height in pixels (every built-in source makes square images)."""
        return int(self.train.images.shape[2])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        _, c, h, w = self.train.images.shape
        return int(c), int(h), int(w)

    def subset(self, classes: list[str]) -> Dataset:
        """Only ``classes``, relabelled 0..k-1 in the given order."""
        unknown = [c for c in classes if c not in self.classes]
        if unknown:
            raise DataError(
                f"unknown class {unknown[0]!r} for dataset '{self.name}'; "
                f"valid: {', '.join(self.classes)}"
            )
        if len(set(classes)) != len(classes):
            raise DataError(f"class list {classes} of dataset '{self.name}' repeats a name")
        relabel = torch.full((len(self.classes),), -1, dtype=torch.int64)
        for new, name in enumerate(classes):
            relabel[self.classes.index(name)] = new

        def pick(split: Split) -> Split:
            return split.select(relabel[split.labels] >= 0, relabel)

        return Dataset(self.name, list(classes), pick(self.train), pick(self.test))


def mean_std(split: Split) -> tuple[list[float], list[float]]:
    """Per-channel mean and (population) std of ``split``'s pixels, in [0, 1] units."""
    channels = split.images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, len(split), 4096):  # chunks keep memory small for big splits
        chunk = split.images[start : start + 4096].to(torch.float64)
        total += chunk.sum(dim=(0, 2, 3))
        squares += chunk.square().sum(dim=(0, 2, 3))
    count = max(1, split.images.numel() // max(channels, 1))
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    return (mean / 255).tolist(), (std / 255).tolist()


def save_dataset(dataset: Dataset, path: Path, source: dict[str, Any]) -> None:
    """Write ``dataset`` and its ``source`` entry to ``path`` atomically."""
    payload = {
        "format": FORMAT,
        "name": dataset.name,
        "classes": list(dataset.classes),
        "source": dict(source),
        "train_images": dataset.train.images.contiguous(),
        "train_labels": dataset.train.labels.contiguous(),
        "test_images": dataset.test.images.contiguous(),
        "test_labels": dataset.test.labels.contiguous(),
    }
    save_torch(payload, Path(path))  # a full disk is an OSError naming the file


def read_source(path: Path) -> dict[str, Any]:
    """The ``source`` config entry stored in a prepared file (provenance)."""
    return dict(_read(Path(path))["source"])


def load_prepared(path: Path, classes: list[str] | None = None) -> Dataset:
    """Load a prepared dataset file; with ``classes``, keep those and relabel 0..k-1."""
    payload = _read(Path(path))
    dataset = Dataset(
        name=payload["name"],
        classes=list(payload["classes"]),
        train=Split(payload["train_images"], payload["train_labels"]),
        test=Split(payload["test_images"], payload["test_labels"]),
    )
    return dataset if classes is None else dataset.subset(list(classes))


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(
            f"prepared dataset not found: {path}; run the prepare step first "
            f"(snakemake {path})"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise DataError(
            f"cannot read prepared dataset {path} ({one_line(error, 100)}); delete it and "
            f"rerun the prepare step (snakemake {path})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(
            f"{path} is not a whitebox dataset file ({FORMAT}); delete it and rerun the "
            f"prepare step (snakemake {path})"
        )
    return payload
