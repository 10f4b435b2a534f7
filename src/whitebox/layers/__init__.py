"""Layers from the research log, one module per family (imports only torch)."""

from whitebox.layers.base import GrowingLayer, Regularized
from whitebox.layers.hashing import IncrementalNeuralHashing
from whitebox.layers.pooling import Mean, Normalize, Scale, SoftMaxPool

__all__ = [
    "GrowingLayer",
    "IncrementalNeuralHashing",
    "Mean",
    "Normalize",
    "Regularized",
    "Scale",
    "SoftMaxPool",
]
