"""Model builders, one function per stage of the research log, behind a registry."""

from whitebox.models.registry import (
    MODELS,
    build_classifier,
    build_model,
    classifier_from_checkpoint,
    model_names,
)

__all__ = ["MODELS", "build_classifier", "build_model", "classifier_from_checkpoint", "model_names"]
