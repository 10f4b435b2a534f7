"""Labelled rows of images: INH slots grouped by class, and unit gradients on noise.

Both figures are one image canvas (built with :func:`~whitebox.figures.grids.image_grid`)
with a text label left of each row, so pixels stay sharp and labels stay readable when
the PNG is scaled to the width of a paper column.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from whitebox.explain.gradients import to_display  # noqa: E402
from whitebox.figures.grids import image_grid, save_figure  # noqa: E402

ROW_GAP = 4  # extra pixels between consecutive labelled rows
PIXELS_PER_INCH = 40  # canvas pixels per figure inch: 28-px MNIST images come out ~0.7 in wide
MAX_WIDTH_INCHES = 12.0  # larger images (e.g. 224 px) are drawn smaller so the figure stays this wide


def _labelled_rows(rows: Sequence[tuple[str, torch.Tensor]], ncols: int, path: Path,
                   title: str = "", image_shape: Sequence[int] | None = None) -> None:
    """One figure: per row a label and up to ``ncols`` images ``(n, C, H, W)`` in [0, 1].

    A row with more than ``ncols`` images wraps into a block of several lines; a row with
    no images keeps its label and an empty line.
    """
    if not rows:
        raise ValueError("nothing to draw: no rows")
    shape = image_shape or next((images.shape[1:] for _, images in rows if images.shape[0]), None)
    if shape is None:
        raise ValueError("nothing to draw: every row is empty")
    channels, height, width = (int(s) for s in shape)
    pad = 1
    blank = torch.ones(1, channels, height, width)
    blocks, centres, top = [], [], 0
    for _, images in rows:
        block = image_grid(images if images.shape[0] else blank, ncols=ncols, pad=pad)
        if not images.shape[0]:
            block[:] = 1.0
        blocks.append(block)
        centres.append(top + block.shape[0] / 2)
        top += block.shape[0] + ROW_GAP
        blocks.append(np.ones((ROW_GAP, block.shape[1], 3), dtype=np.float32))
    canvas = np.concatenate(blocks[:-1])
    inches_per_pixel = min(1 / PIXELS_PER_INCH, MAX_WIDTH_INCHES / canvas.shape[1])
    fig, ax = plt.subplots(figsize=(canvas.shape[1] * inches_per_pixel, canvas.shape[0] * inches_per_pixel))
    ax.imshow(canvas, interpolation="nearest")
    font = max(9.0, min(14.0, 0.55 * height * inches_per_pixel * 72))  # about half a row high
    for (label, _), centre in zip(rows, centres, strict=True):
        ax.text(-width * 0.25, centre, label, ha="right", va="center", fontsize=font)
    if title:
        ax.set_title(title, fontsize=font * 1.1)
    ax.axis("off")
    save_figure(fig, path)


def slots_as_images(slot_weights: torch.Tensor, image_shape: Sequence[int]) -> torch.Tensor:
    """``(S, D)`` slots as ``(S, C, H, W)`` images, each min-max rescaled to [0, 1] on its own."""
    channels, height, width = (int(s) for s in image_shape)
    weights = slot_weights.detach().float().cpu()
    if weights.dim() != 2 or weights.shape[1] != channels * height * width:
        raise ValueError(f"slot weights {tuple(weights.shape)} do not reshape to images "
                         f"{(channels, height, width)}: only slots on raw pixels can be shown")
    return to_display(weights.view(-1, channels, height, width))


def save_slot_figure(slot_weights: torch.Tensor, slot_labels: torch.Tensor, class_names: Sequence[str],
                     image_shape: Sequence[int], path: Path, max_per_class: int = 16,
                     ncols: int | None = None) -> None:
    """INH slots as images, one row (block) per class, labelled ``"<class>: <n> slots"``.

    ``slot_weights`` is the layer's ``(S, D)`` weight on raw pixels (D = C*H*W), shown in
    the model's normalised input space, each slot rescaled to [0, 1] on its own. A class
    shows its first ``max_per_class`` slots in slot order (oldest first) in blocks of
    ``ncols`` (default: all in one line).
    """
    images = slots_as_images(slot_weights, image_shape)
    labels = slot_labels.detach().cpu().long()
    if labels.shape != (images.shape[0],):
        raise ValueError(f"slot_labels shape {tuple(labels.shape)} does not match "
                         f"{images.shape[0]} slots")
    rows = []
    for index, name in enumerate(class_names):
        members = images[labels == index]
        count = members.shape[0]
        rows.append((f"{name}: {count} slot{'s' if count != 1 else ''}", members[:max_per_class]))
    _labelled_rows(rows, ncols=ncols or max_per_class, path=path,
                   image_shape=image_shape)


def save_noise_gradient_figure(gradients: torch.Tensor, unit_names: Sequence[str], path: Path,
                               title: str = "") -> None:
    """One row per unit: its input gradients on several noise images, each rescaled to [0, 1].

    ``gradients`` is ``(n_units, n_samples, C, H, W)`` as from
    :func:`whitebox.explain.unit_gradients_on_noise` (raw; rescaled here with ``to_display``).
    """
    if gradients.dim() != 5 or gradients.shape[0] != len(unit_names):
        raise ValueError(f"gradients must be (n_units={len(unit_names)}, n_samples, C, H, W), "
                         f"got {tuple(gradients.shape)}")
    shown = to_display(gradients.detach().float().cpu())
    rows = list(zip(unit_names, shown, strict=True))
    _labelled_rows(rows, ncols=gradients.shape[1], path=path, title=title)


def render_slots(job) -> None:
    """The ``slots`` kind: an INH model's slots as images, by class."""
    from whitebox.errors import ConfigError
    from whitebox.layers.base import growing_layers
    from whitebox.models.trained import image_shape

    model, state = job.trained
    layers = growing_layers(model)
    if not layers:
        raise ConfigError("the slots figure needs an INH model (model: inh)")
    save_slot_figure(layers[0].weight.detach(), layers[0].slot_labels, state["classes"],
                     image_shape(state), job.out, max_per_class=job.options["max_per_class"])


def render_noise_gradients(job) -> None:
    """The ``noise_gradients`` kind: chosen units of one or several layers on Gaussian noise."""
    from whitebox.errors import ConfigError
    from whitebox.explain.noise import unit_gradients_on_noise
    from whitebox.figures.kinds import noise_gradient_rows
    from whitebox.models.trained import image_shape, submodule

    model, state = job.trained
    gradients, labels = [], []
    for layer, units in noise_gradient_rows(job.options):
        submodule(model, layer)
        try:
            gradients.append(unit_gradients_on_noise(model, layer, units, job.options["n_samples"],
                                                     image_shape(state)))
        except IndexError as error:
            raise ConfigError(str(error)) from None
        labels += [f"{layer} unit {u}" for u in units]
    save_noise_gradient_figure(torch.cat(gradients), labels, job.out,
                               title=f"{job.titled()}: gradients on Gaussian noise")
