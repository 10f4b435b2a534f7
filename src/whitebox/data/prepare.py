"""The prepare step: turn one ``datasets`` config entry into a tensors file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from whitebox.data.cub import load_cub
from whitebox.data.dataset import Dataset, save_dataset
from whitebox.data.errors import DataError
from whitebox.data.imagefolder import load_imagefolder
from whitebox.data.synthetic import synthetic_from_source
from whitebox.data.torchvision_sources import load_torchvision

SOURCES = ("torchvision", "imagefolder", "synthetic", "cub")


def build_dataset(
    name: str, source: dict[str, Any], root: Path, mirror: Path | None = None, workers: int = 1
) -> Dataset:
    """Dataset ``name`` from its config entry ``source`` (raw files kept under ``root``;
    ``workers`` processes decode JPEG sources)."""
    kind = source.get("source")
    if kind == "torchvision":
        return load_torchvision(name, Path(root), mirror)
    if kind == "cub":
        options = {key: source[key] for key in ("crop", "size") if key in source}
        return load_cub(name, Path(root), mirror, workers=workers, **options)
    if kind in ("imagefolder", "synthetic"):
        # These come sorted by class; a fixed shuffle makes "the first test images"
        # a mix of classes, as in the original CIFAR-10 and MNIST files.
        if kind == "imagefolder":
            dataset = load_imagefolder(name, Path(source["path"]))
        else:
            dataset = synthetic_from_source(name, source)
        return Dataset(dataset.name, dataset.classes, dataset.train.shuffled(), dataset.test.shuffled())
    if "subset_of" in source:
        raise DataError(
            f"dataset '{name}' is a subset of '{source['subset_of']}'; prepare the base "
            "dataset and load it with load_prepared(path, classes)"
        )
    raise DataError(f"dataset '{name}' has unknown source {kind!r}; valid: {', '.join(SOURCES)}")


def prepare_dataset(
    name: str,
    source: dict[str, Any],
    root: Path,
    out: Path,
    mirror: Path | None = None,
    workers: int = 1,
) -> Dataset:
    """Fetch and verify base dataset ``name`` into ``root``, convert it, and save it to
    ``out`` atomically together with ``source`` (provenance). Returns the dataset."""
    dataset = build_dataset(name, source, root, mirror, workers)
    save_dataset(dataset, Path(out), source)
    return dataset
