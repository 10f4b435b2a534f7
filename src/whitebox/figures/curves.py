"""Line plots: the continual "accuracy vs number of new slots" curve of INH."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from whitebox.figures.grids import save_figure  # noqa: E402

HELD_OUT_KEYS = ("accuracy_heldout", "accuracy_held_out")  # both spellings are accepted


def save_slot_update_curves(curves: dict[str, dict], path: Path,
                            anchor: float | tuple[str, float] | None = None) -> None:
    """One panel per protocol (``{protocol: curve}``, drawn in that order, one y scale):
    accuracy (%) on the update half and on the held-out half vs new slots added.

    A curve is ``{"new_slots": [0, 1, ...], "accuracy_update": [...], "accuracy_heldout":
    [...]}`` (or ``"accuracy_held_out"``, as the slot-update evaluation writes it) with
    accuracies in percent; the first point is the model before the update, the last one after
    it (both are marked with their values). ``anchor`` draws a dashed reference line: a
    percentage, or ``(label, percentage)`` (e.g. ``("anchor 97.8 %", 97.8)``).
    """
    if not curves:
        raise ValueError("no slot-update curve to draw")
    lines = {protocol: _curve_lines(curve) for protocol, curve in curves.items()}
    fig, axes = plt.subplots(1, len(curves), figsize=(3.4 * len(curves), 2.6), sharey=True,
                             squeeze=False)
    for ax, (protocol, (x, protocol_lines)) in zip(axes[0], lines.items(), strict=True):
        _draw_curve(ax, x, protocol_lines, anchor)
        if len(curves) > 1:
            ax.set_title(f"protocol {protocol}", fontsize=8)
    axes[0, 0].set_ylabel("accuracy (%)", fontsize=8)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, frameon=False, loc="upper center", ncol=3,
               columnspacing=1.0, handlelength=1.8)
    fig.tight_layout(rect=(0, 0, 1, 0.9))
    save_figure(fig, path)


def _curve_lines(curve: dict) -> tuple[list, list]:
    """The x values and ``(name, values, colour, marker)`` of the two halves, checked."""
    held_out_key = next((key for key in HELD_OUT_KEYS if key in curve), None)
    missing = [key for key in ("new_slots", "accuracy_update") if key not in curve]
    missing += [] if held_out_key else [HELD_OUT_KEYS[0]]
    if missing:
        raise ValueError(f"slot-update curve lacks {', '.join(missing)}; expected keys "
                         f"new_slots, accuracy_update, accuracy_heldout")
    x = list(curve["new_slots"])
    lines = [("update half", curve["accuracy_update"], "tab:blue", "o"),
             ("held-out half", curve[held_out_key], "tab:orange", "s")]
    for name, values, _, _ in lines:
        if len(values) != len(x) or not x:
            raise ValueError(f"slot-update curve: {len(values)} accuracies for {name} but "
                             f"{len(x)} slot counts")
    return x, lines


def _draw_curve(ax: plt.Axes, x: list, lines: list,
                anchor: float | tuple[str, float] | None) -> None:
    markevery = None if len(x) <= 30 else 0.08  # dense curves: evenly spaced markers
    for name, values, colour, marker in lines:
        ax.plot(x, values, color=colour, marker=marker, markersize=3, markevery=markevery,
                linewidth=1.4, label=name)
    ends = [(0, "before", "left")] + ([(-1, "after", "right")] if len(x) > 1 else [])
    for index, tag, align in ends:
        ends_here = [values[index] for _, values, _, _ in lines]
        for (_, values, colour, marker), other in zip(lines, ends_here[::-1], strict=True):
            value = values[index]
            above = value > other or (value == other and colour == lines[0][2])
            ax.plot([x[index]], [value], marker=marker, color=colour, markersize=6,
                    markeredgecolor="black", linestyle="none", zorder=3, clip_on=False)
            ax.annotate(f"{tag}: {value:.1f}", (x[index], value),
                        xytext=(4 if align == "left" else -4, 5 if above else -5),
                        textcoords="offset points", ha=align, va="bottom" if above else "top",
                        fontsize=7, color=colour, zorder=4,
                        bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8})
    if anchor is not None:
        label, level = anchor if isinstance(anchor, tuple) else (f"anchor {anchor:.1f} %", anchor)
        ax.axhline(level, color="grey", linestyle="--", linewidth=1.0, label=label)
    ax.set_xlabel("new slots added", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0.03, y=0.15)
    ax.grid(alpha=0.3, linewidth=0.5)
    ax.spines[["top", "right"]].set_visible(False)


def render_slot_update(job) -> None:
    """The ``slot_update`` kind: the accuracy curves of the chosen protocols of slot_update.json."""
    result = job.evaluation_result()
    save_slot_update_curves({protocol: result[protocol]["curve"]
                             for protocol in job.options["protocols"]}, job.out)
