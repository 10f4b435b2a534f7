"""Every unit of a layer at once: input gradients on one noise image, one panel per class.

The log's "aug_module" picture (14.10-21.10.2024) shows the gradients of all 180
representation units of a CIFAR-3 model on one Gaussian-noise image, grouped by the
class whose SoftMaxPool block they belong to. :func:`save_unit_grid_figure` draws that,
optionally with a second model (e.g. the same network without augmentation) below.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from whitebox.explain.gradients import to_display  # noqa: E402
from whitebox.figures.grids import image_grid, save_figure  # noqa: E402

PIXELS_PER_INCH = 40  # canvas pixels per inch: a 10-wide block of 32-px images is ~8 in
MAX_WIDTH_INCHES = 14.0  # wider figures are drawn smaller
TITLE_INCHES = 0.35  # room above each panel for its title


@dataclass(frozen=True)
class UnitGridRow:
    """One model's row: its label, its units' gradients ``(n_units, C, H, W)`` and classes."""

    label: str
    gradients: torch.Tensor
    class_names: Sequence[str]


def unit_class_blocks(n_units: int, n_classes: int) -> list[range]:
    """The contiguous, equal blocks of units per class: block ``c`` belongs to class ``c``.

    That is SoftMaxPool's convention (one block per class pooled into its logit); units that
    do not split evenly cannot be assigned to classes, which is an error.
    """
    if n_classes < 1 or n_units < n_classes or n_units % n_classes:
        raise ValueError(f"{n_units} units do not split into {n_classes} equal per-class blocks "
                         "(the SoftMaxPool convention); choose the layer whose units are pooled "
                         "into the class logits")
    size = n_units // n_classes
    return [range(c * size, (c + 1) * size) for c in range(n_classes)]


def save_unit_grid_figure(rows: Sequence[UnitGridRow], path: Path, ncols: int = 10,
                          title: str = "", info: dict | None = None) -> None:
    """One row of panels per model, one panel per class with that class's units' gradients.

    Each gradient is rescaled to [0, 1] on its own (:func:`~whitebox.explain.to_display`).
    A panel tiles its class's block of units (see :func:`unit_class_blocks`) ``ncols`` per
    line in unit order and is titled ``"<class>: units a-b"``; each row is labelled with
    ``row.label`` at its left. ``info`` is stored in the PNG (see ``save_figure``).
    """
    if not rows:
        raise ValueError("nothing to draw: no rows")
    panels = []  # per row: [(title, canvas), ...]
    for row in rows:
        gradients = row.gradients.detach().float().cpu()
        if gradients.dim() != 4:
            raise ValueError(f"gradients of '{row.label}' must be (n_units, C, H, W), "
                             f"got {tuple(gradients.shape)}")
        shown = to_display(gradients)
        blocks = unit_class_blocks(gradients.shape[0], len(row.class_names))
        panels.append([(f"{name}: units {block.start}\u2013{block.stop - 1}",
                        image_grid(shown[block.start:block.stop], ncols=min(ncols, len(block))))
                       for name, block in zip(row.class_names, blocks, strict=True)])
    n_cols = max(len(row_panels) for row_panels in panels)
    panel_height = max(canvas.shape[0] for row_panels in panels for _, canvas in row_panels)
    panel_width = max(canvas.shape[1] for row_panels in panels for _, canvas in row_panels)
    inches_per_pixel = min(1 / PIXELS_PER_INCH, MAX_WIDTH_INCHES / (n_cols * panel_width))
    fig, axes = plt.subplots(
        len(rows), n_cols, squeeze=False,
        figsize=(n_cols * panel_width * inches_per_pixel * 1.05,
                 len(rows) * (panel_height * inches_per_pixel + TITLE_INCHES) + TITLE_INCHES))
    for r, (row, row_panels) in enumerate(zip(rows, panels, strict=True)):
        for c, ax in enumerate(axes[r]):
            ax.axis("off")
            if c >= len(row_panels):
                continue
            panel_title, canvas = row_panels[c]
            ax.imshow(canvas, interpolation="nearest")
            ax.set_title(panel_title, fontsize=9)
        axes[r][0].text(-0.04, 0.5, row.label, transform=axes[r][0].transAxes, rotation=90,
                        ha="right", va="center", fontsize=10)
    if title:
        fig.suptitle(title, fontsize=10)
    save_figure(fig, path, info=info)


def render_unit_grid(job) -> None:
    """The ``unit_grid`` kind: every unit of a layer on one noise image, by class block; the
    ``compare`` model below it."""
    from whitebox.errors import ConfigError
    from whitebox.explain.noise import all_unit_gradients_on_noise, count_units
    from whitebox.models.trained import image_shape, submodule

    options = job.options
    models = [(job.model, job.trained, options["layer"], job.titled())]
    if job.compare is not None:
        models.append((job.compare, job.compared, options.get("compare_layer") or options["layer"],
                       job.compare_title or job.compared[1]["spec"]["name"]))
    rows, described, first_shape = [], [], None
    for path, (model, state), layer_name, title in models:
        submodule(model, layer_name)
        shape = image_shape(state)
        if first_shape is not None and shape != first_shape:
            raise ConfigError(f"{path} takes {shape} images but {job.model} takes {first_shape}; "
                              "compare models trained on the same dataset")
        first_shape = shape
        classes = list(state["classes"])
        try:
            n_units = count_units(model, layer_name, shape)
            unit_class_blocks(n_units, len(classes))
        except ValueError as error:
            raise ConfigError(f"layer '{layer_name}' of {path}: {error}") from None
        gradients = all_unit_gradients_on_noise(model, layer_name, shape, seed=options["noise_seed"])
        rows.append(UnitGridRow(title, gradients, classes))
        described.append({"experiment": state["spec"]["name"], "title": title, "layer": layer_name,
                          "n_units": n_units, "units_per_class": n_units // len(classes),
                          "classes": classes})
    save_unit_grid_figure(rows, job.out, info={"noise_seed": options["noise_seed"], "rows": described},
                          title=f"gradients of every unit on one Gaussian-noise image "
                                f"(noise seed {options['noise_seed']})")
