"""Layers from the research log, one module per family (imports only torch)."""

from whitebox.layers.base import Regularized
from whitebox.layers.pooling import Mean, Normalize, Scale, SoftMaxPool

__all__ = ["Mean", "Normalize", "Regularized", "Scale", "SoftMaxPool"]
