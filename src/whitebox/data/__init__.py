"""Datasets as tensors: fetch and verify (torchvision, mirror, md5), image folders,
a deterministic synthetic set, and the prepared-file format the training code loads.

``prepare_dataset`` runs once per base dataset (the DAG's data rule);
``load_prepared`` gives training code a ``Dataset`` of uint8 tensors, optionally
restricted to a subset of classes.
"""

from whitebox.data.cub import load_cub
from whitebox.data.dataset import Dataset, Split, load_prepared, mean_std, read_source
from whitebox.data.errors import DataError
from whitebox.data.imagefolder import load_imagefolder
from whitebox.data.prepare import build_dataset, prepare_dataset
from whitebox.data.synthetic import make_synthetic
from whitebox.data.torchvision_sources import load_torchvision

__all__ = [
    "DataError",
    "Dataset",
    "Split",
    "build_dataset",
    "load_cub",
    "load_imagefolder",
    "load_prepared",
    "load_torchvision",
    "make_synthetic",
    "mean_std",
    "prepare_dataset",
    "read_source",
]
