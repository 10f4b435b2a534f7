"""Gradient-quality metrics: the log's criteria for input gradients, made measurable.

The research log asks of a model's input gradients that they be *perceptually aligned*
(look like the image), *class-specific* (differ between classes), *stable on Gaussian
noise* (a unit responds to one pattern whatever the input) and, implicitly, that they pass
the sanity checks of Adebayo et al. (2018). Each function here measures one of these on
gradients from :func:`~whitebox.explain.class_gradients` or
:func:`~whitebox.explain.target_gradients`; :func:`gradient_metrics` gathers all of them,
with the deletion and insertion curves of the saliency maps
(:mod:`whitebox.explain.faithfulness`), for one model as a JSON-ready dict.

Images are floats in [0, 1], ``(N, C, H, W)``; models normalise internally and output
logits ``(N, K)``. Metrics are computed in float64 and returned as float64 tensors.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from whitebox.explain.faithfulness import deletion_insertion
from whitebox.explain.gradients import class_gradients, target_gradients
from whitebox.explain.noise import gaussian_noise
from whitebox.layers.base import Regularized, regularize


def _flat64(tensor: torch.Tensor, start_dim: int) -> torch.Tensor:
    return tensor.detach().flatten(start_dim=start_dim).to(torch.float64)


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    """Each vector (last dimension) divided by its L2 norm; a zero vector stays zero."""
    norms = vectors.norm(dim=-1, keepdim=True)
    return torch.where(norms > 0, vectors / norms.clamp_min(torch.finfo(vectors.dtype).tiny),
                       torch.zeros_like(vectors))


def _mean_off_diagonal(gram: torch.Tensor) -> torch.Tensor:
    """Mean of the off-diagonal entries of each ``(..., K, K)`` matrix."""
    k = gram.shape[-1]
    off = ~torch.eye(k, dtype=torch.bool, device=gram.device)
    return (gram * off).sum(dim=(-2, -1)) / (k * (k - 1))


def alignment(images: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Perceptual alignment of each gradient with its image: ``(N,)`` in [0, 1].

    Formula: ``|<x, g>| / (||x|| ||g||)``, over all of C, H, W; 0 where ``||x|| ||g|| = 0``.
    Source: Etmann et al. 2019, "On the connection between adversarial robustness and
    saliency map interpretability" (ICML), who show it grows with robustness.
    """
    x = _flat64(images, -3)
    g = _flat64(gradients, -3)
    denominator = x.norm(dim=-1) * g.norm(dim=-1)
    dot = (x * g).sum(dim=-1).abs()
    return torch.where(denominator > 0, dot / denominator.clamp_min(torch.finfo(x.dtype).tiny),
                       torch.zeros_like(dot))


def class_specificity(gradients: torch.Tensor) -> torch.Tensor:
    """How much the gradients of K >= 2 classes differ on the same input: ``(N,)`` in [0, 1].

    ``gradients`` is ``(K, N, C, H, W)`` (as from ``class_gradients``).
    Formula: ``1 - mean_{k != l} |cos(g_k, g_l)|`` over pairs of classes; a zero-norm gradient
    counts cosine 0. Parallel or anti-parallel gradients (they weigh the same pixels, e.g.
    ``g_1 = -g_2`` of a two-class head) give 0, orthogonal ones (disjoint evidence) 1, so the
    range and meaning are the same for 2 and for 10 classes.
    Source: the log's "class-specific" criterion; Nie et al. 2018, "A theoretical explanation
    for perplexing behaviors of backpropagation-based visualizations" (ICML), show that
    class-insensitive maps (guided backprop) fail it. The absolute-cosine form is ours.
    """
    if gradients.shape[0] < 2:
        raise ValueError("class_specificity needs the gradients of at least 2 classes")
    units = _unit(_flat64(gradients, -3)).transpose(0, 1)  # (N, K, D)
    return 1.0 - _mean_off_diagonal((units @ units.transpose(1, 2)).abs())


def noise_stability(gradients: torch.Tensor) -> torch.Tensor:
    """How much each unit's gradient stays the same across noise inputs: ``(U,)`` in [-1, 1].

    ``gradients`` is ``(U, M, C, H, W)``: U units, each on the same M >= 2 independent
    Gaussian-noise images. Formula: ``mean_{i<j} pearson(g_i, g_j)`` of the flattened
    gradients; a constant map counts correlation 0. A linear unit gives exactly 1 (its
    gradient is its weight whatever the input), input-dependent gradients near 0.
    Source: the log's "gradient on Gaussian noise" criterion (INH entries, 07-10.2024).
    """
    if gradients.shape[1] < 2:
        raise ValueError("noise_stability needs the gradients on at least 2 noise images")
    flat = _flat64(gradients, 2)
    units = _unit(flat - flat.mean(dim=-1, keepdim=True))  # (U, M, D)
    return _mean_off_diagonal(units @ units.transpose(1, 2))


def saliency_map(gradients: torch.Tensor) -> torch.Tensor:
    """Absolute gradient summed over channels: ``(..., C, H, W)`` -> ``(..., H, W)``.

    Formula: ``S[h, w] = sum_c |g[c, h, w]|``.
    Source: Adebayo et al. 2018, "Sanity checks for saliency maps" (NeurIPS), who compare
    absolute-value maps.
    """
    return gradients.detach().abs().sum(dim=-3)


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks 1..D along the last dimension of ``(N, D)``, tied values sharing their mean rank."""
    n = values.shape[-1]
    ordered, order = values.sort(dim=-1)
    positions = torch.arange(n, device=values.device).expand_as(order)
    starts = torch.ones_like(order, dtype=torch.bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, positions, 0).cummax(dim=-1).values
    last = torch.where(ends, positions, n).flip(-1).cummin(dim=-1).values.flip(-1)
    mean_rank = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(mean_rank).scatter_(-1, order, mean_rank)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation between maps ``a[i]`` and ``b[i]``: ``(N,)`` in [-1, 1].

    Formula: Pearson correlation of the tie-aware average ranks of the flattened maps
    (as ``scipy.stats.spearmanr``); a constant map gives 0.
    Source: Spearman 1904; the similarity measure of Adebayo et al. 2018, "Sanity checks
    for saliency maps" (NeurIPS).
    """
    ranks_a = _average_ranks(_flat64(a, 1))
    ranks_b = _average_ranks(_flat64(b, 1))
    ua = _unit(ranks_a - ranks_a.mean(dim=-1, keepdim=True))
    ub = _unit(ranks_b - ranks_b.mean(dim=-1, keepdim=True))
    return (ua * ub).sum(dim=-1)


def sparsity(gradients: torch.Tensor) -> torch.Tensor:
    """Hoyer sparsity of each flattened gradient ``(N, C, H, W)``: ``(N,)`` in [0, 1].

    Formula: ``(sqrt(n) - ||g||_1 / ||g||_2) / (sqrt(n) - 1)`` with n = C*H*W; one non-zero
    entry gives 1, a constant gives 0; a zero gradient (and n = 1) gives 0.
    Source: Hoyer 2004, "Non-negative matrix factorization with sparseness constraints" (JMLR).
    """
    g = _flat64(gradients, -3)
    n = g.shape[-1]
    l1 = g.abs().sum(dim=-1)
    l2 = g.norm(dim=-1)
    if n < 2:
        return torch.zeros_like(l2)
    ratio = l1 / l2.clamp_min(torch.finfo(g.dtype).tiny)
    value = (math.sqrt(n) - ratio) / (math.sqrt(n) - 1)
    return torch.where(l2 > 0, value.clamp(0.0, 1.0), torch.zeros_like(value))


def high_frequency_share(gradients: torch.Tensor, cutoff: float = 0.5) -> torch.Tensor:
    """Share of each gradient's spectral energy above ``cutoff`` x Nyquist: ``(N,)`` in [0, 1].

    Formula: with ``P = sum_c |FFT2(g_c)|^2`` over (H, W) and the normalised radial frequency
    ``r = sqrt(fy^2 + fx^2) / 0.5`` (``torch.fft.fftfreq``; r = 1 at the Nyquist frequency of
    one axis), the share is ``sum_{r > cutoff} P / sum P``; the DC term counts as low and
    zero energy gives 0. Checkerboard-like, noisy gradients score near 1, smooth ones near 0.
    Source: the spectral view of gradient artefacts of Olah et al. 2017, "Feature
    visualization" (Distill), and Odena et al. 2016, "Deconvolution and checkerboard
    artifacts" (Distill).
    """
    g = gradients.detach().to(torch.float64)
    height, width = g.shape[-2:]
    power = torch.fft.fft2(g).abs().square().sum(dim=-3)  # (..., H, W)
    fy = torch.fft.fftfreq(height, dtype=torch.float64, device=g.device)
    fx = torch.fft.fftfreq(width, dtype=torch.float64, device=g.device)
    radius = (fy.view(-1, 1).square() + fx.view(1, -1).square()).sqrt() / 0.5
    total = power.sum(dim=(-2, -1))
    high = (power * (radius > cutoff)).sum(dim=(-2, -1))
    share = high / total.clamp_min(torch.finfo(g.dtype).tiny)
    return torch.where(total > 0, share.clamp(0.0, 1.0), torch.zeros_like(share))


def _parameter_owners(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters directly, in registration order."""
    return [(name, module) for name, module in model.named_modules()
            if next(module.parameters(recurse=False), None) is not None]


def _split(items: list, steps: int) -> list[list]:
    """At most ``steps`` contiguous blocks of nearly equal size (larger blocks first)."""
    count = min(steps, len(items))
    if count < 1:
        return []
    size, extra = divmod(len(items), count)
    blocks, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        blocks.append(items[start:end])
        start = end
    return blocks


def _reinitialise(module: nn.Module) -> None:
    """Re-draw ``module``'s own parameters from the global RNG (see randomisation_cascade)."""
    init_weights = getattr(module, "init_weights", None)
    overridden = getattr(type(module), "init_weights", None) is not Regularized.init_weights
    if callable(init_weights) and overridden:
        init_weights()
        return
    reset_parameters = getattr(module, "reset_parameters", None)
    if callable(reset_parameters):
        reset_parameters()
        return
    with torch.no_grad():
        for parameter in module.parameters(recurse=False):
            if parameter.numel() == 0:
                continue
            mean = parameter.mean().item()
            std = parameter.std(correction=0).item()
            parameter.normal_(mean, std)


def _detached_copy(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, with tensors a forward pass cached on modules (e.g. the last
    ``min_distances`` of a prototype layer, still attached to its graph, which deepcopy
    refuses) copied detached."""
    memo: dict[int, object] = {}
    for module in model.modules():
        for value in vars(module).values():
            items = value.values() if isinstance(value, dict) else [value]
            for item in items:
                if isinstance(item, torch.Tensor) and not item.is_leaf:
                    memo[id(item)] = item.detach().clone()
    return copy.deepcopy(model, memo)


def _cuda_devices(model: nn.Module) -> list[int]:
    return sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})


def _saliency(model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return saliency_map(target_gradients(model, images, targets))


def randomisation_cascade(model: nn.Module, images: torch.Tensor,
                          targets: torch.Tensor | Sequence[int], steps: int = 6,
                          seed: int = 0) -> list[dict]:
    """Cascading model-parameter randomisation, top-down: one dict per step.

    The modules that own parameters directly are taken output-first (reverse registration
    order) and split into at most ``steps`` contiguous blocks of nearly equal size (earlier
    blocks one larger when uneven). On a deep copy of ``model`` (the argument is never
    modified) each block is re-initialised in turn, cumulatively: ``init_weights()`` where a
    module overrides it (the :class:`~whitebox.layers.base.Regularized` convention), else
    ``reset_parameters()`` (e.g. BatchNorm: also resets running statistics), else each
    parameter refilled with normal(mean, std) of its current values. Draws run under
    ``torch.random.fork_rng`` seeded with ``seed + block``, so results are deterministic and
    the global RNG is untouched; ``regularize`` then restores layer constraints.

    Formula: after each step, the mean over images of the Spearman correlation
    (:func:`rank_correlation`) between the saliency maps (:func:`saliency_map`) of the
    target-logit gradients of the randomised copy and of the original. A faithful
    explanation should decorrelate as layers are randomised.
    Source: Adebayo et al. 2018, "Sanity checks for saliency maps" (NeurIPS), cascading
    randomisation from the top layer.

    Returns ``[{"layers": [module names randomised in this step], "rank_correlation": float}]``.
    """
    reference = _saliency(model, images, targets)
    randomised = _detached_copy(model)
    owners = list(reversed(_parameter_owners(randomised)))
    devices = _cuda_devices(randomised)
    results = []
    for index, block in enumerate(_split(owners, steps)):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed + index)
            for _name, module in block:
                _reinitialise(module)
        regularize(randomised)
        correlation = rank_correlation(reference, _saliency(randomised, images, targets))
        results.append({"layers": [name for name, _module in block],
                        "rank_correlation": correlation.mean().item()})
    return results


def _device(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Eval-mode logits without a graph; the model's training mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return model(images)
    finally:
        model.train(was_training)


def _mean(values: torch.Tensor) -> float:
    return values.mean().item()


def evaluation_set(test_images: torch.Tensor, test_labels: torch.Tensor, *, n_images: int,
                   n_noise: int, noise_std: float, noise_seed: int
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed inputs of :func:`gradient_metrics`: the first ``n_images`` of the uint8 test
    images as floats in [0, 1], their labels, and ``n_noise`` Gaussian-noise images
    N(0.5, noise_std^2) of the same shape drawn with ``noise_seed`` (:func:`gaussian_noise`)."""
    images = test_images[:n_images].float() / 255
    noise = gaussian_noise(n_noise, tuple(images.shape[1:]), seed=noise_seed, std=noise_std)
    return images, test_labels[:n_images], noise


def gradient_metrics(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | Sequence[int],
                     noise: torch.Tensor, *, curve_steps: int, max_classes: int = 10,
                     cascade_steps: int = 6, twin: nn.Module | None = None, seed: int = 0) -> dict:
    """Every gradient metric of one model as a JSON-ready dict of floats, lists and ints.

    ``images`` ``(N, C, H, W)`` are test images with true ``labels``; ``noise``
    ``(M, C, H, W)``, M >= 2, are Gaussian-noise images (:func:`gaussian_noise`).
    Target-logit gradients use the true label. Class-wise metrics use the first
    ``min(max_classes, K)`` classes of the model's K (deterministic and label-independent).

    * ``alignment``, ``sparsity``, ``high_frequency_share``: means over test images;
    * ``class_specificity``: mean over test images (None with fewer than 2 classes used);
    * ``noise_stability``: mean over those class logits, each on all the noise images;
    * ``noise_alignment``: alignment on the noise images of the gradient of the class each
      noise image is classified as (the log's "gradient alignment on Gaussian noise");
    * ``model_randomisation``: :func:`randomisation_cascade` (``cascade_steps``, ``seed``) and
      ``model_randomisation_mean``, the mean of its correlations (None if it has no steps);
    * ``label_randomisation``: with ``twin`` (the same architecture trained on permuted
      labels), the mean Spearman correlation between the saliency maps of model and twin
      for the true labels (Adebayo et al. 2018's data randomisation test); else None;
    * ``deletion_auc``, ``insertion_auc`` and, for a random pixel order,
      ``deletion_auc_random``, ``insertion_auc_random``: the faithfulness curves
      (:func:`~whitebox.explain.faithfulness.deletion_insertion`) of the true labels'
      saliency maps, with ``curve_steps`` steps, ``seed`` and the test images' per-channel
      mean as baseline (a faithful map: deletion below, insertion above random);
    * ``n_images``, ``n_noise``, ``n_classes_used``.

    Inputs are moved to the model's device; the model's (and twin's) parameters, training
    mode and ``.grad`` are left untouched.
    """
    if noise.shape[0] < 2:
        raise ValueError("gradient_metrics needs at least 2 noise images")
    device = _device(model)
    images = images.to(device)
    noise = noise.to(device)
    labels = torch.as_tensor(labels, dtype=torch.long).to(device)

    n_classes = _logits(model, images[:1]).shape[1]
    classes = list(range(min(max_classes, n_classes)))

    gradients = target_gradients(model, images, labels)
    saliency = saliency_map(gradients)
    specificity = (_mean(class_specificity(class_gradients(model, images, classes)))
                   if len(classes) >= 2 else None)
    predicted = _logits(model, noise).argmax(dim=1)
    cascade = randomisation_cascade(model, images, labels, steps=cascade_steps, seed=seed)
    correlations = [step["rank_correlation"] for step in cascade]
    label_randomisation = None
    if twin is not None:
        twin_saliency = _saliency(twin, images.to(_device(twin)), labels.to(_device(twin)))
        label_randomisation = _mean(rank_correlation(saliency, twin_saliency.to(device)))
    return {
        "alignment": _mean(alignment(images, gradients)),
        "sparsity": _mean(sparsity(gradients)),
        "high_frequency_share": _mean(high_frequency_share(gradients)),
        "class_specificity": specificity,
        "noise_stability": _mean(noise_stability(class_gradients(model, noise, classes))),
        "noise_alignment": _mean(alignment(noise, target_gradients(model, noise, predicted))),
        "model_randomisation": cascade,
        "model_randomisation_mean": sum(correlations) / len(correlations) if correlations else None,
        "label_randomisation": label_randomisation,
        **deletion_insertion(model, images, labels, saliency, baseline=images.mean(dim=(0, 2, 3)),
                             steps=curve_steps, seed=seed),
        "n_images": int(images.shape[0]),
        "n_noise": int(noise.shape[0]),
        "n_classes_used": len(classes),
    }
