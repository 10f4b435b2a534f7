"""Explanations computed from a model and tensors: input-space gradients, also on noise."""

from whitebox.explain.gradients import class_gradients, to_display
from whitebox.explain.noise import (
    all_unit_gradients_on_noise,
    count_units,
    gaussian_noise,
    slot_similarity,
    unit_activations,
    unit_gradients_on_noise,
)

__all__ = ["all_unit_gradients_on_noise", "class_gradients", "count_units", "gaussian_noise",
           "slot_similarity", "to_display", "unit_activations", "unit_gradients_on_noise"]
