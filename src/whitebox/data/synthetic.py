"""Deterministic synthetic images: one shape per class, coloured, on a noisy background.

Made for smoke runs and tests: a small conv net learns it in an epoch or two, yet no
single pixel gives the class away (random position, size, colour and background).
Everything comes from a ``torch.Generator`` with fixed seeds and plain arithmetic
(no transcendental functions), so the bytes are the same on every machine.
"""

from __future__ import annotations

import torch

from whitebox.data.dataset import Dataset, Split

SHAPES = (
    "disc",
    "square",
    "cross",
    "hstripes",
    "triangle",
    "ring",
    "diamond",
    "saltire",
    "frame",
    "checker",
)
TRAIN_SEED = 20240729
TEST_SEED = 20240805


def _shape_mask(kind: str, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask of shape ``kind`` in coordinates scaled so that the shape spans [-1, 1]."""
    au, av = u.abs(), v.abs()
    box = torch.maximum(au, av)
    radius2 = u * u + v * v
    if kind == "disc":
        return radius2 <= 1.0
    if kind == "square":
        return box <= 0.8
    if kind == "cross":
        return ((au <= 0.3) & (av <= 1.0)) | ((av <= 0.3) & (au <= 1.0))
    if kind == "hstripes":
        return (box <= 1.0) & (torch.floor((v + 1.0) * 2.5) % 2 == 0)
    if kind == "triangle":
        return (v >= -0.9) & (v <= 0.8) & (au <= (v + 0.9) * 0.6)
    if kind == "ring":
        return (radius2 >= 0.36) & (radius2 <= 1.0)
    if kind == "diamond":
        return au + av <= 1.0
    if kind == "saltire":
        return ((au - av).abs() <= 0.3) & (box <= 1.0)
    if kind == "frame":
        return (box >= 0.55) & (box <= 0.95)
    if kind == "checker":
        cells = torch.floor((u + 1.0) * 1.5) + torch.floor((v + 1.0) * 1.5)
        return (box <= 1.0) & (cells % 2 == 0)
    raise ValueError(f"unknown shape {kind!r}")


def _hsv_to_rgb(hue: torch.Tensor, sat: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
    """(N,) hue/sat/val in [0, 1] -> (N, 3) RGB in [0, 1], by the piecewise-linear formula."""
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + hue * 6.0) % 6.0
        ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
        channels.append(val - val * sat * ramp)
    return torch.stack(channels, dim=1)


def _class_images(
    label: int,
    num_classes: int,
    count: int,
    size: int,
    channels: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` float images (count, C, size, size) in [0, 1] of class ``label``, and their
    boolean shape masks (count, size, size)."""
    kind = SHAPES[label % len(SHAPES)]

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(count, *shape, generator=generator)

    radius = uniform(0.2, 0.34) * size
    centre_x = radius + uniform(0.0, 1.0) * (size - 2 * radius)
    centre_y = radius + uniform(0.0, 1.0) * (size - 2 * radius)
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    u = (grid.view(1, 1, size) - centre_x.view(-1, 1, 1)) / radius.view(-1, 1, 1)
    v = (grid.view(1, size, 1) - centre_y.view(-1, 1, 1)) / radius.view(-1, 1, 1)
    shape = _shape_mask(kind, u, v)  # (count, H, W)
    mask = shape.unsqueeze(1).float()

    # Colour cue: hue bands, one per class, overlapping their neighbours, so colour
    # alone is a hint but the shape decides. Grey images get brightness bands when
    # shapes repeat (more classes than shapes), else random brightness.
    band = label / num_classes
    hue = (band + uniform(-0.6, 0.6) / num_classes) % 1.0
    value = uniform(0.65, 1.0)
    if channels == 3:
        colour = _hsv_to_rgb(hue, uniform(0.5, 1.0), value)
    else:
        groups = -(-num_classes // len(SHAPES))
        group = label // len(SHAPES)
        if groups > 1:
            value = 0.55 + (group + uniform(0.1, 0.9)) * 0.45 / groups
        colour = value.view(-1, 1)
    background = uniform(0.0, 0.35, channels).view(count, channels, 1, 1)
    noise = 0.08 * torch.randn(count, channels, size, size, generator=generator)
    image = background + mask * (colour.view(count, channels, 1, 1) - background) + noise
    return image.clamp(0.0, 1.0), shape


def _split(
    num_classes: int, per_class: int, size: int, channels: int, seed: int
) -> tuple[Split, torch.Tensor]:
    """One split and its shape masks (N, size, size)."""
    generator = torch.Generator().manual_seed(seed)
    parts = [
        _class_images(label, num_classes, per_class, size, channels, generator)
        for label in range(num_classes)
    ]
    images = torch.cat([image for image, _ in parts])
    masks = torch.cat([mask for _, mask in parts])
    labels = torch.arange(num_classes, dtype=torch.int64).repeat_interleave(per_class)
    return Split((images * 255.0).round().to(torch.uint8), labels), masks


def _splits(
    classes: list[str],
    image_size: int | None,
    channels: int,
    train_per_class: int,
    test_per_class: int,
) -> tuple[tuple[Split, torch.Tensor], tuple[Split, torch.Tensor]]:
    """The train and test splits of ``make_synthetic``, each with its shape masks."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if len(classes) < 2:
        raise ValueError("a synthetic dataset needs at least two classes")
    size = image_size if image_size is not None else (32 if channels == 3 else 28)
    return (
        _split(len(classes), train_per_class, size, channels, TRAIN_SEED),
        _split(len(classes), test_per_class, size, channels, TEST_SEED),
    )


def make_synthetic(
    name: str,
    classes: list[str],
    image_size: int | None = None,
    channels: int = 3,
    train_per_class: int = 200,
    test_per_class: int = 50,
) -> Dataset:
    """A synthetic dataset with one shape per class (classes beyond 10 reuse shapes with
    their own colour or brightness band). ``image_size`` defaults to 32 for RGB and 28
    for grey (MNIST-like). Same arguments, same bytes."""
    (train, _), (test, _) = _splits(
        classes, image_size, channels, train_per_class, test_per_class
    )
    return Dataset(name=name, classes=list(classes), train=train, test=test)


def synthetic_masks(
    classes: list[str],
    image_size: int | None = None,
    channels: int = 3,
    train_per_class: int = 200,
    test_per_class: int = 50,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Where the shape is in each image of ``make_synthetic`` (same arguments, without the
    name): boolean masks ``(N, H, W)`` of the train and of the test split, in image order."""
    (_, train), (_, test) = _splits(
        classes, image_size, channels, train_per_class, test_per_class
    )
    return train, test


def synthetic_from_source(name: str, source: dict) -> Dataset:
    """``make_synthetic`` from a config entry ``{source: synthetic, classes: [...], ...}``."""
    return make_synthetic(
        name,
        list(source["classes"]),
        image_size=source.get("image_size"),
        channels=int(source.get("channels", 3)),
        train_per_class=int(source.get("train_per_class", 200)),
        test_per_class=int(source.get("test_per_class", 50)),
    )
