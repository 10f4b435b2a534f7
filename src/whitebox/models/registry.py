"""Name -> builder registry: the names config.yaml's ``model:`` key accepts.

A model module registers its builders itself::

    from whitebox.models.registry import register_model

    @register_model("my_net")
    def my_net(n_classes: int, in_channels: int, **model_args) -> nn.Module: ...

Every module under ``whitebox/models/`` is imported the first time a model is built or
listed, so a new stage is one new module and nothing else in the library changes. This
module imports no model module (the workflow finds the names without torch, statically:
``whitebox.code_identity.registered_models``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from whitebox.layers.pooling import Normalize
from whitebox.registration import registrar

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: ``builder(n_classes, in_channels, **model_args) -> nn.Module`` is model ``name``."""
    return registrar(MODELS, "model", name)


def discover_models() -> dict[str, Callable[..., nn.Module]]:
    """Import every module of the models package (each registers its builders); the registry."""
    package = importlib.import_module("whitebox.models")
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"whitebox.models.{module.name}")
    return MODELS


def model_names() -> list[str]:
    """Valid model names, sorted."""
    return sorted(discover_models())


def build_model(name: str, n_classes: int, in_channels: int, image_size: int | None = None,
                **model_args) -> nn.Module:
    """Build the named model; unknown names raise KeyError listing the valid ones.

    ``image_size`` reaches only the builders that take it (those that size a layer by it).
    Layers initialise their weights once, in their constructors.
    """
    builders = discover_models()
    if name not in builders:
        raise KeyError(f"unknown model '{name}'; valid: {', '.join(model_names())}")
    builder = builders[name]
    if image_size is not None and "image_size" in inspect.signature(builder).parameters:
        model_args = {"image_size": image_size, **model_args}
    return builder(n_classes=n_classes, in_channels=in_channels, **model_args)


def build_classifier(name: str, n_classes: int, mean: list[float], std: list[float],
                     image_size: int | None = None, **model_args) -> nn.Sequential:
    """The named model behind input normalisation: takes images in [0, 1].

    Submodules are ``normalize`` and ``net`` (the log's model, e.g. ``net.conv1``).
    """
    net = build_model(name, n_classes=n_classes, in_channels=len(mean), image_size=image_size,
                      **model_args)
    return nn.Sequential(OrderedDict([("normalize", Normalize(mean, std)), ("net", net)]))


def classifier_from_checkpoint(state: dict) -> nn.Sequential:
    """Rebuild a trained classifier from the dict training saves as model.pt (eval mode)."""
    spec = state["spec"]
    model = build_classifier(spec["model"], len(state["classes"]), state["mean"], state["std"],
                             image_size=state.get("image_size"), **spec["model_args"])
    model.load_state_dict(state["state_dict"])
    return model.eval()
