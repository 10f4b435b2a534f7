"""Explanations computed from a model and tensors: input-space gradients, also on noise, and
their quality metrics."""

from whitebox.explain.gradients import class_gradients, target_gradients, to_display
from whitebox.explain.metrics import (
    alignment,
    class_specificity,
    evaluation_set,
    gradient_metrics,
    high_frequency_share,
    noise_stability,
    randomisation_cascade,
    rank_correlation,
    saliency_map,
    sparsity,
)
from whitebox.explain.noise import (
    all_unit_gradients_on_noise,
    count_units,
    gaussian_noise,
    slot_similarity,
    unit_activations,
    unit_gradients_on_noise,
)

__all__ = ["alignment", "all_unit_gradients_on_noise", "class_gradients", "class_specificity",
           "count_units", "evaluation_set", "gaussian_noise", "gradient_metrics", "high_frequency_share",
           "noise_stability", "randomisation_cascade", "rank_correlation", "saliency_map",
           "slot_similarity", "sparsity", "target_gradients", "to_display", "unit_activations",
           "unit_gradients_on_noise"]
