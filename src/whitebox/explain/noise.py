"""Input gradients of hidden units on Gaussian noise: the log's "gradient on noise" tool.

A unit whose gradient looks the same on any noise image responds to one visual pattern
regardless of the input, which is what the log (22.07-14.10.2024, INH entries) uses to
judge interpretability. ``unit_gradients_on_noise`` works on any model and any named
submodule:

* output ``(N, C, H, W)`` (a convolution): unit ``c`` is channel ``c`` max-pooled over
  all positions, so its gradient is that of the channel's strongest response;
* output ``(N, F)`` (a linear layer, a flattened representation): unit ``f`` is feature ``f``;
  other shapes ``(N, C, ...)``: channel ``c`` max-pooled over the remaining dimensions;
* an :class:`~whitebox.layers.IncrementalNeuralHashing` layer outputs class logits, so
  there a unit is a *slot*: its cosine similarity to the layer's L2-normalised input
  (:func:`slot_similarity`), which is what the slot's threshold is compared with.

``all_unit_gradients_on_noise`` gives every unit of a layer on one noise image in a single
backward pass (the log's 180-slot "aug_module" picture, 14.10-21.10.2024).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers import IncrementalNeuralHashing

DEFAULT_NOISE_STD = 0.25


class _StopForward(Exception):
    """Raised by a hook once the wanted activation is captured: later layers need not run."""


def gaussian_noise(n_samples: int, image_shape: Sequence[int], seed: int = 0,
                   mean: float = 0.5, std: float = DEFAULT_NOISE_STD) -> torch.Tensor:
    """``(n_samples, C, H, W)`` float32 images, i.i.d. N(mean, std²) per pixel, clamped to [0, 1].

    Drawn by a CPU generator seeded with ``seed``, so the same seed gives the same images on
    every machine. With the defaults (0.5, 0.25) about 4.6 % of pixels are clipped.
    """
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn((n_samples, *image_shape), generator=generator) * std + mean
    return noise.clamp_(0.0, 1.0)


def _parameter_like(model: nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), None)


def _capture(model: nn.Module, layer: nn.Module, images: torch.Tensor, pre: bool) -> torch.Tensor:
    """Run ``model`` on ``images`` until ``layer``; return its input (``pre``) or its output."""
    captured: list[torch.Tensor] = []

    def keep(value: torch.Tensor) -> None:
        captured.append(value)
        raise _StopForward

    if pre:
        handle = layer.register_forward_pre_hook(lambda _module, args: keep(args[0]))
    else:
        handle = layer.register_forward_hook(lambda _module, _args, output: keep(output))
    try:
        model(images)
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError("the chosen layer was not called in the model's forward pass")
    return captured[0]


def _inh_layer(model: nn.Module, layer_name: str | None) -> IncrementalNeuralHashing:
    if layer_name is not None:
        layer = model.get_submodule(layer_name)
        if not isinstance(layer, IncrementalNeuralHashing):
            raise TypeError(f"layer '{layer_name}' is {type(layer).__name__}, "
                            f"not IncrementalNeuralHashing")
        return layer
    layers = [m for m in model.modules() if isinstance(m, IncrementalNeuralHashing)]
    if len(layers) != 1:
        raise ValueError(f"model has {len(layers)} IncrementalNeuralHashing layers; name one")
    return layers[0]


def slot_similarity(model: nn.Module, images: torch.Tensor, slots: Sequence[int] | torch.Tensor | None = None,
                    layer_name: str | None = None) -> torch.Tensor:
    """Cosine similarity ``(N, len(slots))`` of each image's INH input to the chosen slots.

    The model runs up to its INH layer (``layer_name``, or the only one), e.g. through
    ``model.normalize`` and ``model.net.features`` for a registry ``inh`` classifier; the
    captured representation is flattened, L2-normalised and multiplied by the (unit-norm)
    slot vectors. Differentiable with respect to ``images``; ``slots=None`` means all.
    """
    layer = _inh_layer(model, layer_name)
    representation = _capture(model, layer, images, pre=True)
    unit = F.normalize(representation.flatten(1), dim=1)
    weight = layer.weight if slots is None else layer.weight[torch.as_tensor(slots, dtype=torch.long,
                                                                             device=layer.weight.device)]
    return unit @ weight.t()


def _per_unit_output(model: nn.Module, layer_name: str, images: torch.Tensor) -> torch.Tensor:
    """``(N, n_units)``: every unit of a non-INH layer (channels max-pooled over positions)."""
    output = _capture(model, model.get_submodule(layer_name), images, pre=False)
    if not isinstance(output, torch.Tensor) or output.dim() < 2:
        raise ValueError(f"layer '{layer_name}' output must be a (N, C, ...) tensor, got "
                         f"{type(output).__name__} {tuple(getattr(output, 'shape', ()))}")
    return output.flatten(2).amax(dim=2) if output.dim() > 2 else output


def unit_activations(model: nn.Module, layer_name: str, images: torch.Tensor,
                     units: Sequence[int]) -> torch.Tensor:
    """``(N, len(units))`` activations of ``units`` of the named submodule (see module doc)."""
    layer = model.get_submodule(layer_name)
    if isinstance(layer, IncrementalNeuralHashing):
        return slot_similarity(model, images, units, layer_name)
    per_unit = _per_unit_output(model, layer_name, images)
    index = torch.as_tensor(list(units), dtype=torch.long, device=per_unit.device)
    if index.numel() and (index.min() < 0 or index.max() >= per_unit.shape[1]):
        raise IndexError(f"units {list(units)} out of range for layer '{layer_name}' with "
                         f"{per_unit.shape[1]} units")
    return per_unit[:, index]


def unit_gradients_on_noise(model: nn.Module, layer_name: str, units: Sequence[int], n_samples: int,
                            image_shape: Sequence[int], seed: int = 0, std: float = DEFAULT_NOISE_STD,
                            mean: float = 0.5) -> torch.Tensor:
    """d unit / d x on Gaussian-noise images: ``(n_units, n_samples, C, H, W)``.

    Noise comes from :func:`gaussian_noise` (seeded, clamped to [0, 1]) and is moved to the
    model's device and dtype; gradients are in pixel space (the model normalises inside).
    The model is evaluated in eval mode (BatchNorm running statistics, so samples do not
    interact) and left in the mode it was in. Layers after ``layer_name`` are not run.
    """
    reference = _parameter_like(model)
    images = gaussian_noise(n_samples, image_shape, seed, mean, std)
    if reference is not None:
        images = images.to(device=reference.device, dtype=reference.dtype)
    was_training = model.training
    model.eval()
    try:
        inputs = images.requires_grad_(True)
        activations = unit_activations(model, layer_name, inputs, units)
        gradients = []
        for column in range(activations.shape[1]):
            (grad,) = torch.autograd.grad(activations[:, column].sum(), inputs, retain_graph=True,
                                          allow_unused=True)
            gradients.append(torch.zeros_like(inputs) if grad is None else grad)
    finally:
        model.train(was_training)
    if not gradients:
        return images.new_zeros((0, *images.shape))
    return torch.stack(gradients).detach()


def count_units(model: nn.Module, layer_name: str, image_shape: Sequence[int]) -> int:
    """How many units the named submodule has (see module doc), from one forward pass."""
    layer = model.get_submodule(layer_name)
    if isinstance(layer, IncrementalNeuralHashing):
        return int(layer.weight.shape[0])
    reference = _parameter_like(model)
    probe = torch.zeros((1, *image_shape))
    if reference is not None:
        probe = probe.to(device=reference.device, dtype=reference.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return int(_per_unit_output(model, layer_name, probe).shape[1])
    finally:
        model.train(was_training)


def all_unit_gradients_on_noise(model: nn.Module, layer_name: str, image_shape: Sequence[int],
                                seed: int = 0, std: float = DEFAULT_NOISE_STD, mean: float = 0.5,
                                chunk_size: int = 256) -> torch.Tensor:
    """d unit / d x of *every* unit of the layer on one noise image: ``(n_units, C, H, W)``.

    The image is ``gaussian_noise(1, image_shape, seed)``, the first image
    :func:`unit_gradients_on_noise` uses with the same seed. Instead of one backward pass
    per unit, the model runs once on a batch of ``n_units`` copies of the image and one
    backward of ``sum_u unit_u(copy_u)`` gives every unit's gradient, each on its own copy
    (chunks of ``chunk_size`` copies bound the memory). This is exact because, in eval
    mode, the copies do not interact (BatchNorm uses running statistics); a layer that
    mixes the images of a batch even in eval mode would break it. The model's mode is
    restored afterwards.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n_units = count_units(model, layer_name, image_shape)
    reference = _parameter_like(model)
    image = gaussian_noise(1, image_shape, seed, mean, std)
    if reference is not None:
        image = image.to(device=reference.device, dtype=reference.dtype)
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, n_units, chunk_size):
            units = list(range(start, min(start + chunk_size, n_units)))
            copies = image.expand(len(units), *image.shape[1:]).clone().requires_grad_(True)
            activations = unit_activations(model, layer_name, copies, units)  # (copies, units)
            (grad,) = torch.autograd.grad(activations.diagonal().sum(), copies, allow_unused=True)
            chunks.append(torch.zeros_like(copies) if grad is None else grad.detach())
    finally:
        model.train(was_training)
    if not chunks:
        return image.new_zeros((0, *image.shape[1:]))
    return torch.cat(chunks)
