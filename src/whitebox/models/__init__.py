"""Model builders, one module per stage of the research log, registered by name
(``whitebox.models.registry``)."""

from whitebox.models.registry import (
    MODELS,
    build_classifier,
    build_model,
    classifier_from_checkpoint,
    model_names,
    register_model,
)

__all__ = ["MODELS", "build_classifier", "build_model", "classifier_from_checkpoint", "model_names",
           "register_model"]
