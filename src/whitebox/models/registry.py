"""Name -> builder registry. Names are what config.yaml's ``model:`` key accepts."""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Callable

from torch import nn

from whitebox.layers import Normalize
from whitebox.layers.base import Regularized
from whitebox.models import (
    gumbel_cifar,
    hashing,
    invariance_cifar,
    positive_cifar,
    prototype_cifar,
    prototype_cub,
)

MODELS: dict[str, Callable[..., nn.Module]] = {
    "augmax_lenet": invariance_cifar.augmax_lenet,
    "conj_disj": prototype_cifar.conj_disj,
    "directional": prototype_cifar.directional,
    "finetuned_cnn": prototype_cub.finetuned_cnn,
    "gumbel2": gumbel_cifar.gumbel2,
    "gumbel3": gumbel_cifar.gumbel3,
    "gumbel_simple": gumbel_cifar.gumbel_simple,
    "inh": hashing.inh,
    "invariant_lenet": invariance_cifar.invariant_lenet,
    "mlp": hashing.mlp,
    "parallel_copies": positive_cifar.parallel_copies,
    "parallel_scales": positive_cifar.parallel_scales,
    "positive_lenet": positive_cifar.positive_lenet,
    "positive_vgg4": positive_cifar.positive_vgg4,
    "prototype_network": prototype_cub.prototype_network,
    "signed_lenet": invariance_cifar.signed_lenet,
}


def model_names() -> list[str]:
    """Valid model names, sorted."""
    return sorted(MODELS)


def build_model(name: str, n_classes: int, in_channels: int, image_size: int | None = None,
                **model_args) -> nn.Module:
    """Build the named model; unknown names raise KeyError listing the valid ones.

    ``image_size`` reaches only the builders that take it (those that size a layer by it).
    """
    if name not in MODELS:
        raise KeyError(f"unknown model '{name}'; valid: {', '.join(model_names())}")
    builder = MODELS[name]
    if image_size is not None and "image_size" in inspect.signature(builder).parameters:
        model_args = {"image_size": image_size, **model_args}
    model = builder(n_classes=n_classes, in_channels=in_channels, **model_args)
    for module in model.modules():
        if isinstance(module, Regularized):
            module.init_weights()
    return model


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
