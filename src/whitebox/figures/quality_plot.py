"""Accuracy against gradient quality across experiments: one column of panels per dataset.

Each dataset gets a panel per gradient metric (rows: alignment, noise stability), with test
accuracy on the y axis, one point per experiment (error bars: the seeds' sample std), coloured
by family, labelled with a number that the key under the panels resolves to the experiment's
name (names themselves collide where stages cluster), arrows from each twin to its variant and
the log's accuracy target as a dashed line. Drawn for a 16 cm wide page: fonts are 7 pt and
more at that size.
"""

from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from whitebox.figures.grids import save_figure  # noqa: E402
from whitebox.figures.quality_points import (  # noqa: E402
    QUALITY_METRICS,
    QualityPlot,
    QualityPoint,
    load_runs,
    metric_label,
    quality_plot,
)

TEXT_WIDTH_INCHES = 6.3  # 16 cm: the figure is drawn at the size it is printed
PANEL_HEIGHT_INCHES = 1.85
SLOTS_PER_ROW = 4  # a dataset with few points takes one slot (1.6 in), a crowded one two
CROWDED = 6  # points from which a dataset's panels take two slots
FONT_PT = 7.5
LABEL_PT = 7.2  # 7 pt and more after the tight bounding box
POINT_LABEL = "point-label"  # the gid of the experiments' names, which _place_labels moves
MARKER_PX = 4  # half the side of the box a marker keeps free of labels, in pixels
# Where a point's name may go: offset in points and horizontal alignment, first choice first
# (mirrored left to right for points in a panel's right half).
LABEL_PLACES = [(4, 3, "left"), (4, -9, "left"), (-4, 3, "right"), (-4, -9, "right"),
                (0, 6, "center"), (0, -13, "center"), (8, -3, "left"), (-8, -3, "right")]
MIRRORED = {"left": "right", "right": "left", "center": "center"}
KEY_CHARACTERS = 150  # characters per line of the key at LABEL_PT on the page's width


def render_accuracy_quality(metrics_paths: list[Path], presentation: dict, claims: dict | None,
                            target_accuracy: float, out: Path) -> None:
    """The figure of the runs of ``metrics_paths`` (their gradient metrics next to them)."""
    save_quality_figure(quality_plot(load_runs(metrics_paths), presentation, claims),
                        target_accuracy, out)


def save_quality_figure(plot: QualityPlot, target_accuracy: float, out: Path) -> None:
    """Draw ``plot`` (see :func:`~whitebox.figures.quality_points.quality_plot`) into ``out``;
    its info (datasets, points, pairs) goes into the PNG's whitebox text chunk.

    Datasets fill rows of :data:`SLOTS_PER_ROW` slots in order, two slots for a crowded one;
    each row of datasets is two rows of panels, one per metric of ``QUALITY_METRICS``.
    """
    if not plot.points:
        raise ValueError("nothing to draw: no experiment has gradient metrics")
    layout = dataset_slots({name: len(points) for name, points in plot.points.items()})
    n_blocks = 1 + max(block for block, _, _ in layout.values())
    n_metrics = len(QUALITY_METRICS)
    colours = {family: plt.get_cmap("tab10")(index % 10)
               for index, family in enumerate(plot.families())}
    numbers = {dataset: {p.experiment: index for index, p in enumerate(points, 1)}
               for dataset, points in plot.points.items()}
    key = point_key(numbers)
    key_inches = 0.13 * len(key)
    legend_inches = 0.2 * math.ceil((len(colours) + 2) / 6)
    height = PANEL_HEIGHT_INCHES * n_metrics * n_blocks + legend_inches + key_inches + 0.1
    fig = plt.figure(figsize=(TEXT_WIDTH_INCHES, height))
    grid = fig.add_gridspec(n_metrics * n_blocks, SLOTS_PER_ROW)
    axes = []
    for dataset, (block, first, width) in layout.items():
        for row, metric in enumerate(QUALITY_METRICS):
            ax = fig.add_subplot(grid[block * n_metrics + row, first:first + width])
            _panel(ax, plot.points[dataset], numbers[dataset], metric, plot.pairs, colours,
                   target_accuracy)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=3 * width))
            ax.set_title(f"{dataset}: {metric_label(metric)}", fontsize=FONT_PT + 0.5)
            if first == 0:
                ax.set_ylabel("test accuracy (%)", fontsize=FONT_PT)
            axes.append(ax)
    handles = [Line2D([], [], marker="o", ls="", color=colour, label=family)
               for family, colour in colours.items()]
    handles.append(Line2D([], [], ls="--", color="0.3", label=f"log's target {target_accuracy:g} %"))
    handles.append(Line2D([], [], color="0.45", marker=">", markevery=[1],
                          label="twin \u2192 variant (finding or claim)"))
    bottom = (key_inches + 0.05) / height
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=FONT_PT, frameon=False,
               handletextpad=0.3, columnspacing=1.0, bbox_to_anchor=(0.5, bottom))
    fig.text(0.01, 0.01, "\n".join(key), fontsize=LABEL_PT - 0.7, va="bottom", ha="left",
             color="0.15", linespacing=1.25)
    fig.tight_layout(rect=(0, bottom + legend_inches / height, 1, 1), h_pad=0.6, w_pad=0.4)
    _place_labels(fig, axes)
    save_figure(fig, out, info={**plot.info(), "target_accuracy": target_accuracy})


def point_key(numbers: dict[str, dict[str, int]]) -> list[str]:
    """The key's lines: per dataset ``cifar2: 1 conj_disj, 2 directional, ...``, wrapped."""
    lines = []
    for dataset, numbered in numbers.items():
        entries = ", ".join(f"{number} {name}" for name, number in numbered.items())
        lines += textwrap.wrap(f"{dataset}: {entries}", KEY_CHARACTERS,
                               subsequent_indent="    ", break_on_hyphens=False)
    return lines


def dataset_slots(n_points: dict[str, int]) -> dict[str, tuple[int, int, int]]:
    """``{dataset: (row of datasets, first slot, slots)}``, filling rows in the given order."""
    layout, block, slot = {}, 0, 0
    for dataset, count in n_points.items():
        width = 2 if count >= CROWDED else 1
        if slot + width > SLOTS_PER_ROW:
            block, slot = block + 1, 0
        layout[dataset] = (block, slot, width)
        slot += width
    return layout


def _panel(ax: plt.Axes, points: list[QualityPoint], numbers: dict[str, int], metric: str,
           pairs: list[tuple[str, str]], colours: dict, target_accuracy: float) -> None:
    """One dataset against one metric: error bars, arrows, the target line, numbered points."""
    drawn = {p.experiment: p for p in points if p.metrics[metric].mean is not None}
    for point in drawn.values():
        x, y = point.metrics[metric], point.accuracy
        ax.errorbar(x.mean, y.mean, xerr=x.std if x.n > 1 else None,
                    yerr=y.std if y.n > 1 else None, fmt="o", ms=4, color=colours[point.family],
                    elinewidth=0.8, capsize=1.5, zorder=3)
        label = ax.annotate(str(numbers[point.experiment]), (x.mean, y.mean),
                            fontsize=LABEL_PT, color="0.15",
                            xytext=LABEL_PLACES[0][:2], textcoords="offset points", zorder=4,
                            gid=POINT_LABEL)
        label.set_in_layout(False)  # placed after the layout, inside the panel
    for twin, variant in pairs:
        if twin in drawn and variant in drawn:
            ax.annotate("", xy=(drawn[variant].metrics[metric].mean, drawn[variant].accuracy.mean),
                        xytext=(drawn[twin].metrics[metric].mean, drawn[twin].accuracy.mean),
                        arrowprops={"arrowstyle": "-|>", "color": "0.45", "lw": 0.7,
                                    "shrinkA": 3, "shrinkB": 3, "mutation_scale": 7}, zorder=2)
    ax.axhline(target_accuracy, ls="--", color="0.3", lw=0.8, zorder=1)
    ax.annotate(f"log's target {target_accuracy:g} %", (0.99, target_accuracy),
                xycoords=("axes fraction", "data"), xytext=(0, 2), textcoords="offset points",
                fontsize=LABEL_PT, color="0.3", ha="right", va="bottom")
    ax.margins(x=0.15, y=0.12)
    ax.tick_params(labelsize=FONT_PT)
    ax.set_xlabel(metric_label(metric), fontsize=FONT_PT)


def _place_labels(fig: plt.Figure, axes: list[plt.Axes]) -> None:
    """Move each point's name to the first of :data:`LABEL_PLACES` where it overlaps no name
    placed before it, no marker and no other text, and stays inside its panel; else to the
    least crowded one."""
    renderer = fig.canvas.get_renderer()
    for ax in axes:
        frame = ax.get_window_extent(renderer)
        placed = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() != POINT_LABEL]
        labels = [t for t in ax.texts if t.get_gid() == POINT_LABEL]
        anchors = [ax.transData.transform(label.xy) for label in labels]
        placed += [Bbox.from_bounds(x - MARKER_PX, y - MARKER_PX, 2 * MARKER_PX, 2 * MARKER_PX)
                   for x, y in anchors]
        for label, (x, _) in zip(labels, anchors, strict=True):
            places = LABEL_PLACES
            if x > (frame.x0 + frame.x1) / 2:
                places = [(-dx, dy, MIRRORED[align]) for dx, dy, align in LABEL_PLACES]
            crowding = functools.partial(_crowding, label, renderer, frame, placed)
            _move(label, min(places, key=crowding))  # min keeps the first of equal ones
            _shift_inside(label, renderer, frame, points_per_pixel=72 / fig.dpi)
            placed.append(label.get_window_extent(renderer))


def _shift_inside(label, renderer, frame: Bbox, points_per_pixel: float) -> None:
    """Shift a label that sticks out of its panel on one side back in, horizontally."""
    box = label.get_window_extent(renderer)
    excess = max(frame.x0 - box.x0, 0) - max(box.x1 - frame.x1, 0)
    if excess:
        x, y = label.get_position()
        label.set_position((x + excess * points_per_pixel, y))


def _move(label, place: tuple[float, float, str]) -> None:
    label.set_position(place[:2])
    label.set_horizontalalignment(place[2])


def _crowding(label, renderer, frame: Bbox, placed: list[Bbox], place: tuple[float, float, str]) -> int:
    """How many of ``placed`` the label overlaps at ``place``, plus 5 if it leaves ``frame``."""
    _move(label, place)
    box = label.get_window_extent(renderer)
    inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    return sum(box.overlaps(other) for other in placed) + 5 * (not inside)
