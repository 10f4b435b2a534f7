"""Trained models as the train command saves them (``model.pt``), loaded back for the
evaluations and figures."""

from __future__ import annotations

from pathlib import Path

from whitebox.errors import ConfigError


def load_trained(model_path: Path):
    """The trained classifier in ``model_path`` (eval mode, on the CPU) and the dict saved
    with it (``spec``, ``classes``, ``mean``, ``std``, ``image_size``, ``state_dict``)."""
    import torch

    from whitebox.models.registry import classifier_from_checkpoint

    model_path = Path(model_path)
    if not model_path.is_file():
        raise ConfigError(f"no trained model at {model_path}; train it first "
                          f"(snakemake {model_path})")
    state = torch.load(model_path, map_location="cpu", weights_only=False)
    return classifier_from_checkpoint(state), state


def image_shape(state: dict) -> tuple[int, int, int]:
    """(C, H, W) of the images the saved model takes."""
    return len(state["mean"]), state["image_size"], state["image_size"]


def submodule(model, name: str):
    """Submodule ``name`` of ``model``; an unknown name lists the layers that have weights."""
    try:
        return model.get_submodule(name)
    except AttributeError:
        names = [n for n, m in model.named_modules() if hasattr(m, "weight") and n]
        raise ConfigError(f"model has no layer '{name}'; layers with weights: "
                          f"{', '.join(names)}") from None
