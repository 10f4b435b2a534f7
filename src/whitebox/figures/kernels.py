"""Kernels of an invariance layer under each of its views (log 21.10-18.11.2024).

Layers such as ScaleConv2d, PerspectiveConv2d and ProjectiveConv2d convolve with several
transformed copies ("views") of each kernel and expose them as ``kernel_views()``
``(V, out, in, k, k)`` with ``view_labels()``. :func:`save_kernel_views_figure` shows a
few kernels (rows) under every view (columns) on one colour scale per kernel, so that
what differs between columns is the transform, and, for a layer that learns perspective
parameters, where those parameters ended up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from whitebox.figures.grids import save_figure  # noqa: E402

DIVERGING_CMAP = "RdBu_r"  # signed kernels: negative blue, zero white, positive red
SEQUENTIAL_CMAP = "magma"  # non-negative kernels: zero darkest
# The paper prints the figure at the text width (16 cm) and at most 0.45 of the text height:
# drawn at that size, 7 pt labels stay 7 pt.
MAX_WIDTH_INCHES = 6.3
MAX_HEIGHT_INCHES = 4.2
MAX_PANEL_INCHES = 0.6
LABEL_POINTS = 7
LABEL_INCHES = 1.1  # row labels and the colour bar's labels
SLANT_OVERHANG_INCHES = 0.8  # how far a slanted column title reaches past the last column
SLANT_RISE_LINES = 3  # how high it rises above the first row, in lines of LABEL_POINTS
SIDE_PANEL_INCHES = 2.6  # width of the column of view-share and perspective panels
SIDE_PANEL_MIN_HEIGHT = 1.9  # inches each side panel needs to stay readable
COLOURBAR_UNITS = 0.25
SHORT_WORD = 6  # column titles with longer words are slanted: one word a line would not fit


def strongest_kernels(views: torch.Tensor, n_kernels: int) -> list[int]:
    """Output channels of ``views`` ``(V, out, in, k, k)`` with the largest norm over all views,
    largest first (at most ``out``)."""
    norms = views.detach().float().cpu().transpose(0, 1).flatten(1).norm(dim=1)
    order = torch.argsort(norms, descending=True, stable=True)
    return [int(i) for i in order[:n_kernels]]


def kernel_panels(views: torch.Tensor, kernels: Sequence[int]) -> tuple[np.ndarray, list[float], str]:
    """What the figure draws, each row divided by its largest absolute value over all views
    (returned, one per row), and how: ``"sequential"`` when every weight is >= 0, ``(rows, V,
    k, k)`` channel means in [0, 1]; else ``"rgb"`` for 3 input channels, ``(rows, V, k, k, 3)``
    as 0.5 + 0.5 w / s in [0, 1]; else ``"diverging"``, channel means in [-1, 1]."""
    chosen = views.detach().float().cpu()[:, list(kernels)].transpose(0, 1)  # (rows, V, in, k, k)
    mode = ("sequential" if bool((views >= 0).all()) else
            "rgb" if chosen.shape[2] == 3 else "diverging")
    if mode != "rgb":
        chosen = chosen.mean(dim=2, keepdim=True)
    scales = chosen.flatten(1).abs().amax(dim=1).clamp_min(1e-12)
    scaled = chosen / scales.view(-1, 1, 1, 1, 1)
    panels = (0.5 + 0.5 * scaled).permute(0, 1, 3, 4, 2) if mode == "rgb" else scaled[:, :, 0]
    return panels.numpy(), [float(s) for s in scales], mode


def save_kernel_views_figure(views: torch.Tensor, view_labels: Sequence[str], path: Path,
                             n_kernels: int = 6, perspective: torch.Tensor | None = None,
                             view_shares: Sequence[float] | None = None, title: str = "",
                             info: dict | None = None) -> list[int]:
    """Rows: the ``n_kernels`` largest-norm kernels; columns: their views; returns the rows' kernels.

    ``views`` is ``(V, out, in, k, k)`` from a layer's ``kernel_views()`` and ``view_labels``
    names the V columns. Every row is divided by ``s``, the largest absolute value of that
    kernel over all its views (in the row label). Non-negative kernels are drawn as the mean
    over input channels on a sequential colour map (0 darkest, ``s`` brightest); signed ones
    in RGB (0.5 + 0.5 w / s) with 3 input channels, else as the channel mean on a diverging
    map (-s blue, 0 white, +s red). ``view_shares`` (one per view, summing to 1) adds a bar
    chart of the share of maxima each view wins; ``perspective`` ``(out, n, 2)`` a scatter of
    all learned (p1, p2), coloured by view ``j = 1..n`` (view 0 is the identity). ``info``
    (plus the kernels, the views, the rendering and the shares) is stored in the PNG.
    """
    if views.dim() != 5:
        raise ValueError(f"kernel_views() must be (views, out, in, k, k), got {tuple(views.shape)}")
    n_views = views.shape[0]
    if len(view_labels) != n_views:
        raise ValueError(f"{len(view_labels)} view labels for {n_views} views")
    if view_shares is not None and len(view_shares) != n_views:
        raise ValueError(f"{len(view_shares)} view shares for {n_views} views")
    if n_kernels < 1:
        raise ValueError(f"n_kernels must be >= 1, got {n_kernels}")
    kernels = strongest_kernels(views, n_kernels)
    panels, scales, mode = kernel_panels(views, kernels)
    side_panels = [panel for panel, given in (("shares", view_shares), ("perspective", perspective))
                   if given is not None]
    n_rows = len(kernels)
    colourbar = mode != "rgb"
    width_ratios = [1.0] * n_views + [COLOURBAR_UNITS] * colourbar
    side_inches = SIDE_PANEL_INCHES if side_panels else 0.0
    slanted = max(len(word) for label in view_labels for word in label.split() or [""]) > SHORT_WORD
    # Row labels, the colour bar's labels and, when slanted, the last title's overhang.
    label_inches = LABEL_INCHES + SLANT_OVERHANG_INCHES * slanted
    panel = min(MAX_PANEL_INCHES, (MAX_WIDTH_INCHES - label_inches - side_inches) / sum(width_ratios),
                (MAX_HEIGHT_INCHES - 0.9) / n_rows)
    kernel_inches = panel * sum(width_ratios) + label_inches
    height = max(panel * n_rows + 0.9, SIDE_PANEL_MIN_HEIGHT * len(side_panels))
    fig = plt.figure(figsize=(kernel_inches + side_inches, height), layout="constrained")
    # The kernels on the left, the side panels stacked in a column of their own on the right,
    # so that neither squeezes the other.
    kernel_fig, side_fig = (fig.subfigures(1, 2, width_ratios=[kernel_inches, side_inches])
                            if side_panels else (fig, None))
    grid = kernel_fig.add_gridspec(n_rows, len(width_ratios), width_ratios=width_ratios)
    image = None
    for row, (kernel, scale) in enumerate(zip(kernels, scales, strict=True)):
        for column in range(n_views):
            ax = kernel_fig.add_subplot(grid[row, column])
            image = _draw_kernel(ax, panels[row, column], mode)
            if row == 0:
                _column_title(ax, view_labels[column], slanted)
            if column == 0:  # horizontal, so that the labels of neighbouring rows never overlap
                bound = f"max {scale:.2g}" if mode == "sequential" else f"\u00b1{scale:.2g}"
                ax.set_ylabel(f"kernel {kernel}\n{bound}", fontsize=LABEL_POINTS, rotation=0,
                              ha="right", va="center")
    if colourbar:
        bar = kernel_fig.colorbar(image, cax=kernel_fig.add_subplot(grid[:, n_views]))
        bar.set_ticks([0, 1] if mode == "sequential" else [-1, 0, 1])
        bar.ax.tick_params(labelsize=LABEL_POINTS)
        bar.set_label("w / s", fontsize=LABEL_POINTS)
    if side_fig is not None:
        axes = side_fig.subplots(len(side_panels), 1, squeeze=False)[:, 0]
        for ax, side in zip(axes, side_panels, strict=True):
            if side == "shares":
                _view_share_bars(ax, view_shares, view_labels)
            else:
                _perspective_scatter(ax, perspective, view_labels)
    if title:
        fig.suptitle(title, fontsize=LABEL_POINTS + 1)
    shares = None if view_shares is None else [float(share) for share in view_shares]
    save_figure(fig, path, info={**(info or {}), "kernels": kernels, "views": list(view_labels),
                                 "perspective": perspective is not None, "rgb": mode == "rgb",
                                 "nonnegative": mode == "sequential", "view_shares": shares})
    return kernels


def _column_title(ax: plt.Axes, label: str, slanted: bool) -> None:
    """A view's label over its column, one word a line, or on one slanted line, so that the
    titles of neighbouring columns never overlap."""
    if slanted:
        text = ax.text(0.0, 1.08, label, transform=ax.transAxes, rotation=30, ha="left",
                       va="bottom", rotation_mode="anchor", fontsize=LABEL_POINTS)
        # Out of the layout, which would otherwise shrink every column to make room for the
        # overhang: the figure keeps that room on the right (SLANT_OVERHANG_INCHES) and an
        # empty title of as many lines as the slanted label rises keeps it above.
        text.set_in_layout(False)
        ax.set_title("\n" * SLANT_RISE_LINES, fontsize=LABEL_POINTS)
    else:
        ax.set_title("\n".join(label.split()) or " ", fontsize=LABEL_POINTS)


def _draw_kernel(ax: plt.Axes, panel: np.ndarray, mode: str):
    """One kernel view, without ticks; returns the image (for the colour bar)."""
    if mode == "rgb":
        image = ax.imshow(panel, interpolation="nearest")
    elif mode == "sequential":
        image = ax.imshow(panel, cmap=SEQUENTIAL_CMAP, vmin=0, vmax=1, interpolation="nearest")
    else:
        image = ax.imshow(panel, cmap=DIVERGING_CMAP, vmin=-1, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def _view_share_bars(ax: plt.Axes, shares: Sequence[float], view_labels: Sequence[str]) -> None:
    """One horizontal bar per view (first on top): its share of the maxima, in percent."""
    percent = [100.0 * float(share) for share in shares]
    positions = np.arange(len(percent))
    ax.barh(positions, percent, color="0.35")
    for position, value in zip(positions, percent, strict=True):
        inside = value > 70  # the number inside a long bar, else after it
        ax.text(value - 2 if inside else value + 2, position, f"{value:.1f}", va="center",
                ha="right" if inside else "left", fontsize=LABEL_POINTS,
                color="white" if inside else "black")
    ax.set_yticks(positions, list(view_labels), fontsize=LABEL_POINTS)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.tick_params(axis="x", labelsize=LABEL_POINTS)
    ax.set_xlabel("maxima won (%)", fontsize=LABEL_POINTS)
    ax.set_title("which view wins\n(test images)", fontsize=LABEL_POINTS)


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
    ax.set_xlabel("$p_1$", fontsize=LABEL_POINTS)
    ax.set_ylabel("$p_2$", fontsize=LABEL_POINTS)
    ax.yaxis.set_label_position("right")
    ax.yaxis.tick_right()
    ax.tick_params(labelsize=LABEL_POINTS)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=2))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.set_title("learned perspective", fontsize=LABEL_POINTS)
    if n <= 12:
        ax.legend(fontsize=LABEL_POINTS - 1, loc="upper left", bbox_to_anchor=(0.0, -0.3),
                  ncol=2, frameon=False, markerscale=1.2, handletextpad=0.2)


KERNEL_VIEW_LAYERS = "ScaleConv2d, PerspectiveConv2d, ProjectiveConv2d"


def render_kernel_views(job) -> None:
    """The ``kernel_views`` kind: a layer's strongest kernels under each of its views, and which
    view wins its maxima on the test images (``whitebox.evaluation.view_usage``)."""
    import torch

    from whitebox.errors import ConfigError
    from whitebox.evaluation.view_usage import view_usage
    from whitebox.models.trained import submodule

    name = job.options["layer"]
    model = job.trained[0]
    layer = submodule(model, name)
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
        images = job.prepared().test.images
        (usage,) = view_usage(model, images, names=[name])
        save_kernel_views_figure(
            views, labels, job.out, n_kernels=job.options["n_kernels"], perspective=perspective,
            view_shares=[view["share"] for view in usage["views"]],
            title=f"{job.titled()}: {name} ({kind}) kernels under {len(labels)} views",
            info={"layer": name, "layer_type": kind, "out_channels": int(views.shape[1]),
                  "in_channels": int(views.shape[2]), "identity_share": usage["identity_share"],
                  "tie_share": usage["tie_share"], "n_test_images": int(images.shape[0])})
    except ValueError as error:
        raise ConfigError(f"layer '{name}' ({kind}): {error}") from None
