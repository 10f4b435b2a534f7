"""Image grids: test images with their class-logit gradients, and first-layer filters."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from whitebox.io import atomic_write  # noqa: E402


def image_grid(images: torch.Tensor, ncols: int, pad: int = 1, group_size: int = 1,
               group_pad: int = 0, background: float = 1.0) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [0, 1] into one ``(rows*H', cols*W', 3)`` array.

    Grey images are shown as RGB. With ``group_size > 1`` an extra gap of ``group_pad``
    pixels separates consecutive groups along a row, so grouped filters read as groups.
    """
    images = images.detach().float().cpu().clamp(0, 1)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    n, _, h, w = images.shape
    nrows = -(-n // ncols)
    n_gaps = (ncols - 1) // group_size if group_size > 1 else 0
    width = ncols * (w + pad) + pad + n_gaps * group_pad
    canvas = np.full((nrows * (h + pad) + pad, width, 3), background, dtype=np.float32)
    for index in range(n):
        row, col = divmod(index, ncols)
        x = pad + col * (w + pad) + (col // group_size) * group_pad * (group_size > 1)
        y = pad + row * (h + pad)
        canvas[y:y + h, x:x + w] = images[index].permute(1, 2, 0).numpy()
    return canvas


# PNG text chunk in which a figure records what it shows (read by whitebox.paper for captions).
FIGURE_INFO_KEY = "whitebox"


def save_figure(fig: plt.Figure, path: Path, info: dict | None = None) -> None:
    """Write ``fig`` as PNG atomically and close it.

    ``info`` (JSON-able) is stored in the PNG's ``whitebox`` text chunk, so that the paper
    can describe exactly what the figure shows (e.g. which kernels were picked).
    """
    metadata = {FIGURE_INFO_KEY: json.dumps(info, sort_keys=True)} if info is not None else None
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=150, bbox_inches="tight",
                                                   metadata=metadata))
    finally:
        plt.close(fig)


def save_gradient_figure(images: torch.Tensor, gradients: torch.Tensor, class_names: list[str],
                         path: Path, ncols: int = 10) -> None:
    """One grid of the clean ``images`` and, per class, one grid of its displayed gradients.

    ``gradients`` is ``(n_classes, N, C, H, W)`` already rescaled to [0, 1].
    """
    panels = [("test images", images)] + [
        (f"gradient of logit '{name}'", grads) for name, grads in zip(class_names, gradients, strict=True)
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 2.3), squeeze=False)
    for ax, (title, panel) in zip(axes[0], panels, strict=True):
        ax.imshow(image_grid(panel, ncols=ncols), interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    save_figure(fig, path)


def save_filter_grid(weight: torch.Tensor, path: Path, group_size: int = 1,
                     title: str = "") -> None:
    """First-layer filters ``(out, in, kh, kw)``, each rescaled to [0, 1], in groups.

    Filters with 3 input channels are shown as RGB, others as the mean over channels.
    Consecutive groups of ``group_size`` filters are separated by a gap.
    """
    filters = weight.detach().float().cpu()
    if filters.shape[1] != 3:
        filters = filters.mean(dim=1, keepdim=True)
    flat = filters.flatten(1)
    low, high = flat.min(1).values, flat.max(1).values
    filters = (filters - low.view(-1, 1, 1, 1)) / (high - low).clamp_min(1e-12).view(-1, 1, 1, 1)
    groups_per_row = max(1, 10 // group_size)
    canvas = image_grid(filters, ncols=groups_per_row * group_size, group_size=group_size,
                        group_pad=3 if group_size > 1 else 0)
    fig, ax = plt.subplots(figsize=(canvas.shape[1] / 40, canvas.shape[0] / 40))
    ax.imshow(canvas, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    save_figure(fig, path)


def render_gradients(job) -> None:
    """The ``gradients`` kind: the first ``n_images`` test images and each class's gradient."""
    from whitebox.explain.gradients import class_gradients, to_display

    model, state = job.trained
    images = job.prepared().test.images[:job.options["n_images"]].float() / 255
    save_gradient_figure(images, to_display(class_gradients(model, images)), state["classes"],
                         job.out)


def render_filters(job) -> None:
    """The ``filters`` kind: the filters of one convolution of the log's model, in groups."""
    from whitebox.models.trained import submodule

    layer = submodule(job.trained[0].net, job.options["layer"])
    save_filter_grid(layer.weight, job.out, group_size=job.options["group_size"],
                     title=f"{job.titled()}: {job.options['layer']} filters")
