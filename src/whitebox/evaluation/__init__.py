"""Evaluations of trained models on tensors (no config, no paths)."""

from whitebox.evaluation.accuracy import accuracy_report, predict

__all__ = ["accuracy_report", "predict"]
