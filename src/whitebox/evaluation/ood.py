"""Out-of-distribution detection by INH's "unmatched" flag and best-slot margin.

The log claims that inputs no slot matches (best margin < 0) flag data the model was
not trained for. Measured two ways, for in-distribution test images against each OOD
set: the *unmatched rate* of both (the flag as a detector) and the *AUROC* of the best
margin (the margin as a score, higher = more in-distribution; threshold-free).

AUROCs are in **percent** (50 = chance, 100 = every in-distribution example scores
above every OOD one), like every other rate the evaluations report.

Also here: the OOD sets (seeded noise images, greyscale crops of RGB images) and the
helpers the other INH evaluations share (features, best margins, the INH layer).
"""

from __future__ import annotations

import torch
from torch import nn

from whitebox.evaluation.accuracy import eval_argmax
from whitebox.explain.noise import gaussian_noise as noise_images
from whitebox.layers.hashing import IncrementalNeuralHashing

LUMA_601_PER_MILLE = (299, 587, 114)  # ITU-R BT.601 weights of R, G, B (x 1000)
GAUSSIAN_MEAN = 0.5  # noise images: pixel = clip(mean + std * N(0, 1), 0, 1) * 255
GAUSSIAN_STD = 0.25


# -- shared helpers for INH models ------------------------------------------------------
def inh_layer(model: nn.Module) -> IncrementalNeuralHashing:
    """The INH layer of a classifier built by ``build_classifier("inh", ...)``."""
    layer = getattr(getattr(model, "net", None), "inh", None)
    if not isinstance(layer, IncrementalNeuralHashing) or not hasattr(model.net, "features"):
        raise ValueError("expected an INH classifier from build_classifier('inh', ...) with "
                         "submodules normalize, net.features and net.inh")
    return layer


def inh_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """What the INH layer sees for float images in [0, 1]: ``net.features(normalize(x))``.

    Keeps the graph (PGD needs it); wrap in ``torch.no_grad`` otherwise.
    """
    inh_layer(model)
    normalize = getattr(model, "normalize", None)
    x = normalize(images) if normalize is not None else images
    return model.net.features(x).flatten(1)


@torch.no_grad()
def features_of(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """INH-input features (float32) of uint8 images ``(N, C, H, W)``, in eval mode, batched."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"expected uint8 images (N, C, H, W), got {images.dtype} "
                         f"{tuple(images.shape)}")
    if images.shape[0] == 0:
        return torch.empty(0, inh_layer(model).in_features, device=images.device)
    was_training = model.training
    model.eval()
    try:
        return torch.cat([inh_features(model, images[start:start + batch_size].float().div_(255))
                          for start in range(0, images.shape[0], batch_size)])
    finally:
        model.train(was_training)


@torch.no_grad()
def best_margins(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Each uint8 image's best slot margin (< 0: unmatched, i.e. flagged)."""
    return inh_layer(model).best_margin(features_of(model, images, batch_size))


@torch.no_grad()
def inh_predictions(model: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """Predicted classes from INH-input features (the layer's eval-mode forward, float32)."""
    return eval_argmax(inh_layer(model), features)


def _percent(part: torch.Tensor | float, whole: int) -> float | None:
    """``100 * part / whole`` rounded to 4 decimals (None for an empty whole)."""
    return round(100.0 * float(part) / whole, 4) if whole else None


# -- AUROC -----------------------------------------------------------------------------
def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """P(random in-distribution score > random OOD score), ties counting half, in percent.

    The Mann-Whitney U statistic from mid-ranks of the pooled scores: one sort,
    O(n log n), exact (float64 ranks). 50 = no separation, 100 = perfect.
    """
    scores_in = torch.as_tensor(scores_in).detach().flatten().to("cpu", torch.float64)
    scores_out = torch.as_tensor(scores_out).detach().flatten().to("cpu", torch.float64)
    n_in, n_out = scores_in.numel(), scores_out.numel()
    if n_in == 0 or n_out == 0:
        raise ValueError(f"auroc needs scores on both sides, got {n_in} in and {n_out} out")
    pooled = torch.cat([scores_in, scores_out])
    if torch.isnan(pooled).any():
        raise ValueError("auroc got NaN scores")
    values, order = torch.sort(pooled)
    _, counts = torch.unique_consecutive(values, return_counts=True)
    ends = torch.cumsum(counts, 0).to(torch.float64)  # 1-based rank of each tie group's last
    mid_ranks = (ends - (counts.to(torch.float64) - 1) / 2).repeat_interleave(counts)
    ranks = torch.empty_like(mid_ranks)
    ranks[order] = mid_ranks
    u_statistic = ranks[:n_in].sum().item() - n_in * (n_in + 1) / 2
    return 100.0 * u_statistic / (n_in * n_out)


# -- OOD sets --------------------------------------------------------------------------
def gaussian_noise(n: int, shape: tuple[int, int, int], seed: int = 0,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` uint8 images ``(n, *shape)``: the noise images of ``explain.gaussian_noise``
    (i.i.d. ``clip(0.5 + 0.25 z, 0, 1)``, seeded) quantised to 0..255."""
    pixels = noise_images(n, shape, seed=seed, mean=GAUSSIAN_MEAN, std=GAUSSIAN_STD)
    return pixels.mul_(255).round_().to(torch.uint8).to(device)


def uniform_noise(n: int, shape: tuple[int, int, int], seed: int = 0,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` uint8 images ``(n, *shape)`` with i.i.d. pixels uniform on {0, ..., 255}."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *shape), generator=generator, dtype=torch.uint8).to(device)


def grey_crops(images: torch.Tensor, size: int = 28, seed: int = 0) -> torch.Tensor:
    """Greyscale ``size`` x ``size`` crops (uint8 ``(N, 1, size, size)``) of uint8 images.

    RGB becomes luma by ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B, rounded half up); one-channel
    images are kept. Each image gets its own crop position, uniform over all positions,
    drawn from a CPU generator seeded with ``seed``. Used for MNIST vs CIFAR-10 crops.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"grey_crops expects uint8 (N, 1 or 3, H, W) images, got "
                         f"{images.dtype} {tuple(images.shape)}")
    n, channels, height, width = images.shape
    if height < size or width < size:
        raise ValueError(f"cannot crop {size}x{size} from {height}x{width} images")
    if channels == 3:
        # exact integer arithmetic, halves rounded up: same bytes on every device
        weights = torch.tensor(LUMA_601_PER_MILLE, device=images.device).view(1, 3, 1, 1)
        grey = ((images.int() * weights).sum(1) + 500).div(1000, rounding_mode="floor").to(torch.uint8)
    else:
        grey = images[:, 0]
    generator = torch.Generator().manual_seed(seed)
    top = torch.randint(0, height - size + 1, (n,), generator=generator).to(images.device)
    left = torch.randint(0, width - size + 1, (n,), generator=generator).to(images.device)
    offsets = torch.arange(size, device=images.device)
    rows = (top.view(n, 1) + offsets).view(n, size, 1)
    cols = (left.view(n, 1) + offsets).view(n, 1, size)
    index = torch.arange(n, device=images.device).view(n, 1, 1)
    return grey[index, rows, cols].unsqueeze(1).contiguous()


# -- reports ---------------------------------------------------------------------------
def _flag_stats(margins: torch.Tensor) -> dict:
    n = int(margins.numel())
    return {"n": n, "unmatched": _percent((margins < 0).sum(), n),
            "mean_margin": round(float(margins.mean()), 6) if n else None}


def ood_report(model: nn.Module, in_images: torch.Tensor, out_sets: dict[str, torch.Tensor],
               batch_size: int = 1000) -> dict:
    """Unmatched rates and best-margin AUROC of in-distribution test images vs each OOD set.

    All images uint8 ``(N, C, H, W)`` of the same ``(C, H, W)``, on the model's device.
    Returns ``{"in_distribution": {n, unmatched %, mean_margin}, "sets": {name: {n,
    unmatched %, mean_margin, auroc %}}}``; ``auroc`` treats in-distribution as positive
    and a higher best margin as more in-distribution.
    """
    margins_in = best_margins(model, in_images, batch_size)
    report = {"in_distribution": _flag_stats(margins_in), "sets": {}}
    for name, images in out_sets.items():
        if images.shape[1:] != in_images.shape[1:]:
            raise ValueError(f"OOD set {name!r} has images of shape {tuple(images.shape[1:])}, "
                             f"the in-distribution ones {tuple(in_images.shape[1:])}")
        margins_out = best_margins(model, images, batch_size)
        report["sets"][name] = {**_flag_stats(margins_out),
                                "auroc": round(auroc(margins_in, margins_out), 4)}
    return report


def class_incremental_report(model: nn.Module, seen_images: torch.Tensor,
                             unseen_images: torch.Tensor, seen_labels: torch.Tensor | None = None,
                             batch_size: int = 1000) -> dict:
    """Does a model trained on some classes leave the other classes unmatched?

    ``seen_images``: test images of the training classes; ``unseen_images``: test images
    of the held-back classes. Returns ``{"seen": {n, unmatched %, mean_margin},
    "unseen": {...}, "auroc": %}`` (seen = positive), plus ``seen_accuracy`` (%) when
    ``seen_labels`` are given.
    """
    margins_seen = best_margins(model, seen_images, batch_size)
    margins_unseen = best_margins(model, unseen_images, batch_size)
    report = {"seen": _flag_stats(margins_seen), "unseen": _flag_stats(margins_unseen),
              "auroc": round(auroc(margins_seen, margins_unseen), 4)}
    if seen_labels is not None:
        predictions = inh_predictions(model, features_of(model, seen_images, batch_size))
        report["seen_accuracy"] = _percent((predictions == seen_labels).sum(), len(seen_labels))
    return report


def evaluate(job) -> dict:
    """The ``ood`` evaluation kind: the test split against Gaussian and uniform noise and
    greyscale crops of CIFAR-10's test images, as many as the test split has."""
    from whitebox.data.dataset import load_prepared

    images = job.test_split().images
    shape = tuple(images.shape[1:])
    cifar = load_prepared(job.extra("cifar10")).test.images
    return ood_report(job.model, images, {
        "gaussian_noise": gaussian_noise(len(images), shape, seed=job.seed),
        "uniform_noise": uniform_noise(len(images), shape, seed=job.seed),
        "cifar10_grey_crops": grey_crops(cifar, size=shape[-1], seed=job.seed)})


def evaluate_class_incremental(job) -> dict:
    """The ``class_incremental`` evaluation kind: the test images of the base dataset's classes
    the model never saw, against those it did."""
    from whitebox.data.dataset import load_prepared
    from whitebox.errors import ConfigError

    spec = job.state["spec"]
    seen = load_prepared(job.data, spec["classes"])
    everything = load_prepared(job.data)
    unseen = [name for name in everything.classes if name not in seen.classes]
    if not unseen:
        raise ConfigError(f"experiment '{spec['name']}' trains on every class of its dataset; "
                          "class_incremental needs a subset dataset")
    result = class_incremental_report(job.model, seen.test.images,
                                      everything.subset(unseen).test.images,
                                      seen_labels=seen.test.labels)
    return {**result, "seen_classes": seen.classes, "unseen_classes": unseen}
