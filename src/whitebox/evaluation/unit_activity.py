"""Which units of a trained model never fire, and how alike its representation units are.

The log found that "there are always some dead units" in the first convolutional layer
(23.09-30.09.2024) and that PercentileNorm made the representation units "more diverse"
(14.10-21.10.2024). :func:`unit_activity` measures both on the test set, in eval mode:

* dead units, per layer of ReLU-like units (ReLU, GELU, ELU, ... : output > 0 exactly where
  the input is > 0): the channels whose output is <= 0 at every position of every image,
  as a count and a share of the layer's channels; layers in the order the forward pass
  calls them, so the first is the model's first layer of such units;
* the representation: the units a ``SoftMaxPool`` pools into class scores (its input, e.g.
  ``positive_lenet``'s units after their normalisation ``norm``), each a number per image.
  ``mean_abs_correlation`` is the mean ``|pearson(u_i, u_j)|`` over pairs of units that vary
  over the test set (constant units are counted in ``n_constant`` and left out);
  ``effective_rank`` is ``exp(H)`` of the normalised eigenvalues of their correlation matrix
  (Roy and Vetterli 2007): 1 when all units are one signal, their number when uncorrelated.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from whitebox.errors import ConfigError
from whitebox.evaluation.watch import watch_forward
from whitebox.layers import SoftMaxPool

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.ELU, nn.SELU, nn.CELU, nn.SiLU, nn.Mish)


def correlation_summary(units: torch.Tensor) -> dict:
    """``mean_abs_correlation`` and ``effective_rank`` of the columns of ``units`` ``(N, U)``
    (see the module docstring), with ``n_units`` and ``n_constant``; None where fewer than two
    units vary."""
    x = units.detach().double()
    x = x - x.mean(dim=0)
    norms = x.norm(dim=0)
    varying = norms > 1e-12 * (1.0 + units.detach().double().abs().amax(dim=0))
    report = {"n_units": int(units.shape[1]), "n_constant": int((~varying).sum()),
              "mean_abs_correlation": None, "effective_rank": None}
    k = int(varying.sum())
    if k < 2:
        return report
    unit = x[:, varying] / norms[varying]
    correlation = unit.T @ unit
    off = ~torch.eye(k, dtype=torch.bool)
    eigenvalues = torch.linalg.eigvalsh(correlation).clamp_min(0.0)
    p = eigenvalues / eigenvalues.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    report.update(mean_abs_correlation=float(correlation.abs()[off].mean()),
                  effective_rank=math.exp(float(entropy)))
    return report


@torch.no_grad()
def unit_activity(model: nn.Module, images: torch.Tensor, batch_size: int = 500) -> dict:
    """Dead units per layer of ReLU-like units and the representation's correlations (see the
    module docstring) on the uint8 ``images`` ``(N, C, H, W)``, in eval mode.

    ``layers``: ``[{layer, layer_type, n_units, dead, dead_share}]`` in call order;
    ``representation``: :func:`correlation_summary` of the first ``SoftMaxPool``'s input with
    its ``layer`` (None without one).
    """
    maxima: dict[str, torch.Tensor] = {}  # per layer: each channel's largest output so far
    pooled: list[torch.Tensor] = []
    names = {module: name for name, module in model.named_modules()}
    activations = [m for m in model.modules() if isinstance(m, RELU_LIKE)]
    pool = next((m for m in model.modules() if isinstance(m, SoftMaxPool)), None)

    def watch(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        channels = output.detach().transpose(0, 1).flatten(1).amax(dim=1).cpu()
        name = names[module]
        maxima[name] = channels if name not in maxima else torch.maximum(maxima[name], channels)

    handles = [m.register_forward_hook(watch) for m in activations]
    if pool is not None:
        handles.append(pool.register_forward_pre_hook(
            lambda module, inputs: pooled.append(inputs[0].detach().flatten(1).cpu())))
    watch_forward(model, images, handles, batch_size)
    layers = []
    for name, channels in maxima.items():  # in the order of their first call
        dead = int((channels <= 0).sum())
        layers.append({"layer": name, "layer_type": type(model.get_submodule(name)).__name__,
                       "n_units": int(channels.numel()), "dead": dead,
                       "dead_share": dead / channels.numel()})
    representation = None
    if pooled:
        representation = {"layer": names[pool], **correlation_summary(torch.cat(pooled))}
    return {"n_images": int(images.shape[0]), "layers": layers, "representation": representation}


def evaluate(job) -> dict:
    """The ``unit_activity`` evaluation kind: :func:`unit_activity` on the test split."""
    spec = job.state["spec"]
    result = unit_activity(job.model, job.test_split().images)
    if not result["layers"] and result["representation"] is None:
        raise ConfigError(f"evaluation 'unit_activity' needs ReLU-like units or a SoftMaxPool; "
                          f"experiment '{spec['name']}' ('{spec['model']}') has neither")
    return result
