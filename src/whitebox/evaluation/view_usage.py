"""Which view wins the maximum of a layer that takes a maximum over views.

The log's invariance layers keep, per unit, the best of several variants: ``ScaleConv2d`` and
``PerspectiveConv2d`` of warped copies of a kernel, ``ProjectiveConv2d`` of 2D projections of a
3D kernel, ``AugMax`` of augmented copies of the input. The log found that "usually only one
2D view was relevant"; :func:`view_usage` measures it: over all test images, output channels
(units) and positions, the share of maxima each view wins. A maximum that several views attain
exactly (e.g. all zero on a blank patch) is split equally among them, and the share of such
ties is reported. A layer whose identity view wins ~100 % does not use its other views.

For learned perspective parameters it also says how far they moved from where training
started: ``PerspectiveConv2d.init_perspective`` is deterministic (no seed: view j starts at
``spread * (cos 2 pi j/n, sin 2 pi j/n)``), so a copy of the trained layer re-initialised by
that rule gives the exact starting values, and checkpoints need not store them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from whitebox.errors import ConfigError
from whitebox.evaluation.watch import watch_forward
from whitebox.layers import AugMax, PerspectiveConv2d, ProjectiveConv2d, ScaleConv2d, WarpedConv2d
from whitebox.layers.invariance import conv_max_over_views

VIEW_LAYER_TYPES = "ScaleConv2d, PerspectiveConv2d, ProjectiveConv2d, AugMax"


def view_labels(layer: nn.Module) -> list[str]:
    """The names of the views ``layer`` takes its maximum over, in its order ([] for others)."""
    if isinstance(layer, AugMax):
        return layer.copy_names() if layer.n_copies > 1 else []
    if isinstance(layer, WarpedConv2d | ProjectiveConv2d):
        labels = [str(label) for label in layer.view_labels()]
        return labels if len(labels) > 1 else []
    return []


def identity_view(layer: nn.Module) -> int | None:
    """The index of the view that is the layer's plain kernel or input (None if it has none:
    every projective view is tilted; a scale layer without scale 1)."""
    if isinstance(layer, AugMax | PerspectiveConv2d):
        return 0
    if isinstance(layer, ScaleConv2d) and 1.0 in layer.scales:
        return layer.scales.index(1.0)
    return None


def view_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{name: layer} of the submodules that take a maximum over two or more views."""
    return {name: module for name, module in model.named_modules() if view_labels(module)}


class _Wins:
    """Maxima won per view, accumulated over batches of responses ``(V, ...)``."""

    def __init__(self, n_views: int) -> None:
        self.wins = torch.zeros(n_views, dtype=torch.float64)
        self.ties = 0
        self.maxima = 0

    def add(self, responses: torch.Tensor) -> None:
        responses = responses.detach().flatten(1)
        best = responses == responses.amax(dim=0, keepdim=True)
        n_best = best.sum(dim=0)
        self.wins += (best.double() / n_best).sum(dim=1).cpu()
        self.ties += int((n_best > 1).sum())
        self.maxima += responses.shape[1]


def _per_view_responses(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``(V, N, out, H, W)``: the convolution with each view alone (the bias, shared, left out)."""
    views = layer.kernel_views()
    return torch.stack([conv_max_over_views(x, views[v:v + 1], None, layer.stride, layer.padding)
                        for v in range(views.shape[0])])


def _watch(layer: nn.Module, wins: _Wins) -> torch.utils.hooks.RemovableHandle:
    """A forward hook that adds the responses ``layer`` maximises in each forward to ``wins``."""
    if isinstance(layer, AugMax):  # the wrapped module's output, copy-major (see AugMax.augment)
        return layer.module.register_forward_hook(
            lambda module, inputs, out: wins.add(out.unflatten(0, (layer.n_copies, -1))))
    return layer.register_forward_hook(
        lambda module, inputs, out: wins.add(_per_view_responses(module, inputs[0])))


def perspective_displacement(layer: PerspectiveConv2d) -> dict:
    """How far the learned ``(p1, p2)`` moved from their initial values: mean and max over
    output channels and views of ``||p - p_init||`` (the layer's units), with its ``spread``."""
    initial = copy.deepcopy(layer)
    initial.init_perspective()
    moved = (layer.perspective - initial.perspective).detach().double().norm(dim=-1)
    return {"spread": float(layer.spread), "mean_displacement": float(moved.mean()),
            "max_displacement": float(moved.max())}


@torch.no_grad()
def view_usage(model: nn.Module, images: torch.Tensor, names: Sequence[str] | None = None,
               batch_size: int = 250) -> list[dict]:
    """Per view layer (``names``, default all of :func:`view_layers`), the share of maxima each
    view wins on the uint8 ``images`` ``(N, C, H, W)``, in eval mode.

    One dict per layer: ``layer``, ``layer_type``, ``views`` (``[{label, share, identity}]``,
    shares in [0, 1] summing to 1), ``identity_share`` (None without an identity view),
    ``tie_share`` (maxima attained by several views, split equally among them), ``n_maxima``
    and, for ``PerspectiveConv2d``, ``perspective`` (:func:`perspective_displacement`).
    """
    layers = view_layers(model)
    if names is not None:
        unknown = [name for name in names if name not in layers]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} takes no maximum over views (view layers: "
                             f"{', '.join(layers) or 'none'})")
        layers = {name: layers[name] for name in names}
    wins = {name: _Wins(len(view_labels(layer))) for name, layer in layers.items()}
    handles = [_watch(layer, wins[name]) for name, layer in layers.items()]
    watch_forward(model, images, handles, batch_size)
    return [_layer_report(name, layer, wins[name]) for name, layer in layers.items()]


def _layer_report(name: str, layer: nn.Module, wins: _Wins) -> dict:
    shares = (wins.wins / max(wins.maxima, 1)).tolist()
    identity = identity_view(layer)
    report = {
        "layer": name,
        "layer_type": type(layer).__name__,
        "views": [{"label": label, "share": share, "identity": index == identity}
                  for index, (label, share) in enumerate(zip(view_labels(layer), shares, strict=True))],
        "identity_share": None if identity is None else shares[identity],
        "tie_share": wins.ties / max(wins.maxima, 1),
        "n_maxima": wins.maxima,
    }
    if isinstance(layer, PerspectiveConv2d):
        report["perspective"] = perspective_displacement(layer)
    return report


def evaluate(job) -> dict:
    """The ``view_usage`` evaluation kind: every view layer of the model on the test split."""
    spec = job.state["spec"]
    if not view_layers(job.model):
        raise ConfigError(f"evaluation 'view_usage' needs a layer that takes a maximum over views "
                          f"({VIEW_LAYER_TYPES} with two or more); experiment '{spec['name']}' "
                          f"('{spec['model']}') has none")
    images = job.test_split().images
    return {"n_images": int(images.shape[0]), "layers": view_usage(job.model, images)}
