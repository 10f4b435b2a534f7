"""How stable the input gradients of hidden units are on Gaussian noise, per convolution.

The log judged hidden units by their input gradients on noise: a unit whose gradient is the
same pattern on any noise image responds to one visual feature; the deeper positive VGG's
units were "of really bad quality" (23.09-30.09.2024). :func:`hidden_noise_stability` puts a
number on it: for every unit (output channel) of every convolution (a module with
``out_channels`` and ``kernel_size``), the gradient of its response at the centre of its map
on each noise image, and their :func:`~whitebox.explain.metrics.noise_stability` (mean
pairwise Pearson correlation), averaged over the layer's units. The centre, not the
strongest response the noise-gradient figures show: that position moves from image to image,
and the same pattern at two places does not correlate. A plain first convolution is linear,
so its units score 1; the score says something from the second layer up.

The noise images are those of the schema's defaults of config.yaml's ``gradient_metrics``
(``n_noise`` images N(0.5, ``noise_std``^2) drawn with ``noise_seed``): evaluation kinds take
no options, so every run sees the same noise whatever config.yaml sets there.
"""

from __future__ import annotations

import torch
from torch import nn

from whitebox.errors import ConfigError
from whitebox.explain.metrics import noise_stability
from whitebox.explain.noise import gaussian_noise
from whitebox.models.trained import image_shape
from whitebox.schema import defaults


def conv_layers(model: nn.Module) -> dict[str, nn.Module]:
    """{name: module} of the convolutions of ``model`` (modules with ``out_channels`` and
    ``kernel_size``), in module order."""
    return {name: module for name, module in model.named_modules()
            if hasattr(module, "out_channels") and hasattr(module, "kernel_size")}


def _centre(output: torch.Tensor) -> torch.Tensor:
    """``(N, U)``: each channel of ``(N, U, H, W)`` at the centre of the map (``(N, U)`` as is)."""
    return output[:, :, output.shape[2] // 2, output.shape[3] // 2] if output.dim() == 4 else output


def centre_unit_gradients(model: nn.Module, layer: nn.Module, images: torch.Tensor,
                          chunk_size: int = 256) -> torch.Tensor:
    """d unit / d image of every unit of ``layer`` (its channel at the map's centre) on each of
    ``images`` ``(M, C, H, W)``: ``(U, M, C, H, W)``, in eval mode (restored afterwards).

    Units are batched: copies of the images, one block per unit, and one backward pass of the
    sum of each block's unit give every unit's gradients (exact in eval mode, where the images
    of a batch do not interact); ``chunk_size`` bounds the copies per pass."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: captured.append(output))
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            model(images[:1])
        n_units = _centre(captured.pop()).shape[1]
        per_chunk = max(1, chunk_size // images.shape[0])
        for start in range(0, n_units, per_chunk):
            units = torch.arange(start, min(start + per_chunk, n_units), device=images.device)
            copies = images.repeat(len(units), 1, 1, 1).requires_grad_(True)
            model(copies)
            responses = _centre(captured.pop()).unflatten(0, (len(units), images.shape[0]))
            chosen = responses.gather(2, units.view(-1, 1, 1).expand(-1, images.shape[0], 1))
            (grad,) = torch.autograd.grad(chosen.sum(), copies, allow_unused=True)
            grad = torch.zeros_like(copies) if grad is None else grad
            chunks.append(grad.detach().unflatten(0, (len(units), images.shape[0])))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(chunks)


def hidden_noise_stability(model: nn.Module, noise: torch.Tensor) -> list[dict]:
    """Per convolution of ``model``: ``{layer, layer_type, n_units, noise_stability}``, the mean
    over its units of the noise stability of their centre gradients on ``noise`` (M >= 2)."""
    noise = noise.to(next(model.parameters()).device)
    layers = []
    for name, layer in conv_layers(model).items():
        gradients = centre_unit_gradients(model, layer, noise)
        layers.append({"layer": name, "layer_type": type(layer).__name__,
                       "n_units": int(gradients.shape[0]),
                       "noise_stability": float(noise_stability(gradients).mean())})
    return layers


def evaluate(job) -> dict:
    """The ``hidden_noise_stability`` evaluation kind: every convolution of the model."""
    spec = job.state["spec"]
    if not conv_layers(job.model):
        raise ConfigError(f"evaluation 'hidden_noise_stability' needs convolutions; experiment "
                          f"'{spec['name']}' ('{spec['model']}') has none")
    settings = defaults("properties", "gradient_metrics")
    noise = gaussian_noise(settings["n_noise"], image_shape(job.state), seed=settings["noise_seed"],
                           std=settings["noise_std"])
    return {"n_noise": settings["n_noise"], "noise_std": settings["noise_std"],
            "layers": hidden_noise_stability(job.model, noise)}
