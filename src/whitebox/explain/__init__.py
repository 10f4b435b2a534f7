"""Explanations computed from a model and tensors: input-space gradients."""

from whitebox.explain.gradients import class_gradients, to_display

__all__ = ["class_gradients", "to_display"]
