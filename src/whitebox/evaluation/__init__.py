"""Evaluations of trained models on tensors (no config, no paths)."""

from whitebox.evaluation.accuracy import accuracy_report, predict
from whitebox.evaluation.attacks import inh_flags, pgd_linf, robustness_report
from whitebox.evaluation.ood import (
    auroc,
    best_margins,
    class_incremental_report,
    gaussian_noise,
    grey_crops,
    ood_report,
    uniform_noise,
)
from whitebox.evaluation.slot_update import continual_slot_update

__all__ = [
    "accuracy_report",
    "auroc",
    "best_margins",
    "class_incremental_report",
    "continual_slot_update",
    "gaussian_noise",
    "grey_crops",
    "inh_flags",
    "ood_report",
    "pgd_linf",
    "predict",
    "robustness_report",
    "uniform_noise",
]
