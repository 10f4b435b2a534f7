"""Kernels of an invariance layer under each of its views (log 21.10-18.11.2024).

Layers such as ScaleConv2d, PerspectiveConv2d and ProjectiveConv2d convolve with several
transformed copies ("views") of each kernel and expose them as ``kernel_views()``
``(V, out, in, k, k)`` with ``view_labels()``. :func:`save_kernel_views_figure` shows a
few kernels (rows) under every view (columns) on one colour scale per kernel, so that
what differs between columns is the transform, and, for a layer that learns perspective
parameters, where those parameters ended up.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from whitebox.figures.grids import save_figure  # noqa: E402

DIVERGING_CMAP = "RdBu_r"  # negative blue, zero white, positive red
PANEL_INCHES = 0.75


def strongest_kernels(views: torch.Tensor, n_kernels: int) -> list[int]:
    """Output channels of ``views`` ``(V, out, in, k, k)`` with the largest norm over all views,
    largest first (at most ``out``)."""
    norms = views.detach().float().cpu().transpose(0, 1).flatten(1).norm(dim=1)
    order = torch.argsort(norms, descending=True, stable=True)
    return [int(i) for i in order[:n_kernels]]


def kernel_panels(views: torch.Tensor, kernels: Sequence[int]) -> tuple[np.ndarray, list[float]]:
    """What the figure draws: ``(rows, V, k, k, 3)`` RGB in [0, 1] for 3 input channels, else
    ``(rows, V, k, k)`` channel means in [-1, 1]; each row divided by its largest absolute
    value over all views (returned, one per row), so zero stays zero (mid-grey or white)."""
    chosen = views.detach().float().cpu()[:, list(kernels)].transpose(0, 1)  # (rows, V, in, k, k)
    if chosen.shape[2] != 3:
        chosen = chosen.mean(dim=2, keepdim=True)
    scales = chosen.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
    scaled = chosen / scales.view(-1, 1, 1, 1, 1)
    rgb = scaled.shape[2] == 3
    panels = (0.5 + 0.5 * scaled).permute(0, 1, 3, 4, 2) if rgb else scaled[:, :, 0]
    return panels.numpy(), [float(s) for s in scales]


def save_kernel_views_figure(views: torch.Tensor, view_labels: Sequence[str], path: Path,
                             n_kernels: int = 6, perspective: torch.Tensor | None = None,
                             title: str = "", info: dict | None = None) -> list[int]:
    """Rows: the ``n_kernels`` largest-norm kernels; columns: their views; returns the rows' kernels.

    ``views`` is ``(V, out, in, k, k)`` from a layer's ``kernel_views()`` and ``view_labels``
    names the V columns. With 3 input channels a kernel is drawn in RGB (0.5 + 0.5 w / s), else
    the mean over input channels on a diverging colour map (-s blue, 0 white, +s red); ``s`` is
    the largest absolute value of that kernel over all its views, shown in the row label.
    ``perspective`` ``(out, n, 2)`` adds a scatter of all learned (p1, p2) pairs, coloured by
    view ``j = 1..n`` (view 0 is the identity). ``info`` (plus the chosen kernels) is stored
    in the PNG.
    """
    if views.dim() != 5:
        raise ValueError(f"kernel_views() must be (views, out, in, k, k), got {tuple(views.shape)}")
    n_views = views.shape[0]
    if len(view_labels) != n_views:
        raise ValueError(f"{len(view_labels)} view labels for {n_views} views")
    if n_kernels < 1:
        raise ValueError(f"n_kernels must be >= 1, got {n_kernels}")
    kernels = strongest_kernels(views, n_kernels)
    panels, scales = kernel_panels(views, kernels)
    rgb = panels.ndim == 5
    scatter = perspective is not None
    n_rows = len(kernels)
    width_ratios = [1.0] * n_views + ([max(2.5, min(n_rows, 4.0))] if scatter else [])
    fig = plt.figure(figsize=(PANEL_INCHES * sum(width_ratios) + 1.2,
                              PANEL_INCHES * max(n_rows, 3 if scatter else 1) + 0.8),
                     layout="constrained")
    grid = fig.add_gridspec(n_rows, len(width_ratios), width_ratios=width_ratios)
    for row, (kernel, scale) in enumerate(zip(kernels, scales, strict=True)):
        for column in range(n_views):
            ax = fig.add_subplot(grid[row, column])
            if rgb:
                ax.imshow(panels[row, column], interpolation="nearest")
            else:
                ax.imshow(panels[row, column], cmap=DIVERGING_CMAP, vmin=-1, vmax=1,
                          interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:  # long labels wrap so that neighbouring columns' titles never overlap
                label = textwrap.wrap(view_labels[column], 11, break_long_words=False)
                ax.set_title("\n".join(label) or " ", fontsize=7)
            if column == 0:
                ax.set_ylabel(f"kernel {kernel}\n\u00b1{scale:.2g}", fontsize=8)
    if scatter:
        _perspective_scatter(fig.add_subplot(grid[:, -1]), perspective, view_labels)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path, info={**(info or {}), "kernels": kernels, "views": list(view_labels),
                                 "perspective": scatter, "rgb": rgb})
    return kernels


def _perspective_scatter(ax: plt.Axes, perspective: torch.Tensor, view_labels: Sequence[str]) -> None:
    """All learned (p1, p2) of every output channel, one colour per view."""
    values = perspective.detach().float().cpu()
    if values.dim() != 3 or values.shape[2] != 2:
        raise ValueError(f"perspective must be (out, n_views, 2), got {tuple(values.shape)}")
    n = values.shape[1]
    colours = plt.get_cmap("viridis" if n > 10 else "tab10")
    for j in range(n):
        label = view_labels[j + 1] if len(view_labels) == n + 1 else f"view {j + 1}"
        colour = colours(j / max(n - 1, 1)) if n > 10 else colours(j)
        ax.scatter(values[:, j, 0].numpy(), values[:, j, 1].numpy(), s=10, color=colour,
                   label=label, alpha=0.8)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.axvline(0, color="0.7", lw=0.5)
    ax.set_xlabel("$p_1$", fontsize=8)
    ax.set_ylabel("$p_2$", fontsize=8)
    ax.yaxis.set_label_position("right")
    ax.yaxis.tick_right()
    ax.tick_params(labelsize=7)
    ax.set_title("learned perspective", fontsize=8)
    if n <= 12:
        ax.legend(fontsize=6, loc="best", markerscale=1.2)


KERNEL_VIEW_LAYERS = "ScaleConv2d, PerspectiveConv2d, ProjectiveConv2d"


def render_kernel_views(job) -> None:
    """The ``kernel_views`` kind: a layer's strongest kernels under each of its views."""
    import torch

    from whitebox.errors import ConfigError
    from whitebox.models.trained import submodule

    name = job.options["layer"]
    layer = submodule(job.trained[0], name)
    kind = type(layer).__name__
    if not (callable(getattr(layer, "kernel_views", None)) and callable(getattr(layer, "view_labels", None))):
        raise ConfigError(f"layer '{name}' is {kind}, which has no kernel_views()/view_labels(); "
                          f"the kernel_views figure needs a layer with views of its kernel "
                          f"({KERNEL_VIEW_LAYERS})")
    with torch.no_grad():
        views = layer.kernel_views().detach()
    labels = [str(label) for label in layer.view_labels()]
    perspective = getattr(layer, "perspective", None)
    perspective = perspective.detach() if isinstance(perspective, torch.Tensor) else None
    try:
        save_kernel_views_figure(
            views, labels, job.out, n_kernels=job.options["n_kernels"], perspective=perspective,
            title=f"{job.titled()}: {name} ({kind}) kernels under {len(labels)} views",
            info={"layer": name, "layer_type": kind, "out_channels": int(views.shape[1]),
                  "in_channels": int(views.shape[2])})
    except ValueError as error:
        raise ConfigError(f"layer '{name}' ({kind}): {error}") from None
