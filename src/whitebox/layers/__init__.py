"""Layers from the research log, one module per family (imports only torch and kornia)."""

from whitebox.layers.base import GrowingLayer, Regularized
from whitebox.layers.gumbel import GumbelConv2d, annealed_tau, conv2d_parameter_count, gumbel_topk
from whitebox.layers.hashing import IncrementalNeuralHashing
from whitebox.layers.invariance import AugMax, PerspectiveConv2d, ScaleConv2d, WarpedConv2d
from whitebox.layers.normalization import DecorrelatedBatchNorm, IterNorm, PercentileNorm
from whitebox.layers.parallel import Parallel, copies
from whitebox.layers.pooling import Mean, Normalize, Scale, SoftMaxPool
from whitebox.layers.positive import PositiveConv2d
from whitebox.layers.projective import ProjectiveConv2d
from whitebox.layers.prototypes import PartPrototypes

__all__ = [
    "AugMax",
    "DecorrelatedBatchNorm",
    "GrowingLayer",
    "GumbelConv2d",
    "IncrementalNeuralHashing",
    "IterNorm",
    "Mean",
    "Normalize",
    "Parallel",
    "PartPrototypes",
    "PercentileNorm",
    "PerspectiveConv2d",
    "PositiveConv2d",
    "ProjectiveConv2d",
    "Regularized",
    "Scale",
    "ScaleConv2d",
    "SoftMaxPool",
    "WarpedConv2d",
    "annealed_tau",
    "conv2d_parameter_count",
    "copies",
    "gumbel_topk",
]
