"""Several stages' class-logit gradients on the same images, one block of rows per stage.

The columns are the first test images of a dataset and a few Gaussian-noise images (the same
for every stage); a header row shows the images, and each stage (its first-seed model) has one
row per class with that class logit's input gradient (:func:`~whitebox.explain.gradients.
class_gradients`), rescaled per image symmetrically around zero so that grey is a zero
gradient. A coloured frame marks the gradient of each test image's true class.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from whitebox.explain.gradients import class_gradients, to_signed_display  # noqa: E402
from whitebox.explain.noise import gaussian_noise  # noqa: E402
from whitebox.figures.grids import image_grid, save_figure  # noqa: E402

TEXT_WIDTH_INCHES = 6.3  # 16 cm: the figure is drawn at the size it is printed
IMAGES_WIDTH_INCHES = 3.6  # the grid of images; the rest is the row labels
FONT_PT = 8.0  # 7 pt and more once tight bounding box and page width scale it
TITLE_CHARS = 24  # a stage title wraps at this many characters
PAD = 1  # pixels between cells
TRUE_CLASS_COLOUR = "#d95f02"


@dataclass(frozen=True)
class StageGradients:
    """One stage's row block: its title and gradients ``(n_classes, n_columns, C, H, W)``."""

    title: str
    gradients: torch.Tensor


def comparison_images(test_images: torch.Tensor, n_images: int, n_noise: int,
                      noise_seed: int) -> torch.Tensor:
    """The columns: the first ``n_images`` of ``test_images`` (uint8) and ``n_noise`` noise
    images (0.5 + 0.25 z clipped to [0, 1], drawn with ``noise_seed``), floats in [0, 1]."""
    images = test_images[:n_images].float() / 255
    return torch.cat([images, gaussian_noise(n_noise, images.shape[1:], seed=noise_seed)])


def render_gradient_comparison(stages: Sequence[tuple[str, Path]], data: Path, n_images: int,
                               n_noise: int, noise_seed: int, out: Path) -> None:
    """The figure of the first-seed models ``[(title, model.pt), ...]`` of one dataset
    (prepared tensors ``data``); they must share the dataset's classes."""
    from whitebox.data.dataset import load_prepared
    from whitebox.errors import ConfigError
    from whitebox.models.trained import load_trained

    trained = [(title, *load_trained(Path(path))) for title, path in stages]
    classes = trained[0][2]["classes"]
    for title, _, state in trained:
        if state["classes"] != classes:
            raise ConfigError(f"stage '{title}' has classes {state['classes']}, not {classes}; "
                              "compare stages of one dataset")
    test = load_prepared(Path(data), trained[0][2]["spec"]["classes"]).test
    images = comparison_images(test.images, n_images, n_noise, noise_seed)
    rows = [StageGradients(title, class_gradients(model, images)) for title, model, _ in trained]
    save_gradient_comparison(images, test.labels[:n_images].tolist(), classes, rows, out,
                             info={"stages": [title for title, _ in stages], "classes": classes,
                                   "n_images": min(n_images, len(test.labels)),
                                   "n_noise": n_noise, "noise_seed": noise_seed})


def save_gradient_comparison(images: torch.Tensor, labels: Sequence[int], class_names: Sequence[str],
                             rows: Sequence[StageGradients], out: Path, info: dict | None = None) -> None:
    """Draw the header row of ``images`` (the first ``len(labels)`` are test images with those
    labels, the rest noise) and each stage's per-class gradients; ``info`` goes into the PNG."""
    if not rows:
        raise ValueError("nothing to draw: no stages")
    n_columns, _, height, width = images.shape
    n_classes = len(class_names)
    heights = [1] + [n_classes] * len(rows)
    cell_inches = IMAGES_WIDTH_INCHES / n_columns
    fig, axes = plt.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
                             figsize=(TEXT_WIDTH_INCHES, cell_inches * (sum(heights) + 0.5 * len(rows))))
    column_names = [class_names[label] for label in labels] + ["noise"] * (n_columns - len(labels))
    header = axes[0, 0]
    header.imshow(image_grid(images, ncols=n_columns, pad=PAD), interpolation="nearest")
    header.set_xticks(_centres(n_columns, width), column_names, fontsize=FONT_PT, rotation=30,
                      ha="left", rotation_mode="anchor")
    header.xaxis.tick_top()
    header.set_yticks([(height + 2 * PAD) / 2], ["images"], fontsize=FONT_PT)
    for ax, row in zip(axes[1:, 0], rows, strict=True):
        shown = to_signed_display(row.gradients.detach().float().cpu()).flatten(0, 1)
        ax.imshow(image_grid(shown, ncols=n_columns, pad=PAD), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks(_centres(n_classes, height), list(class_names), fontsize=FONT_PT)
        ax.set_ylabel(textwrap.fill(row.title, TITLE_CHARS), rotation=0, ha="right", va="center",
                      fontsize=FONT_PT, fontweight="bold", labelpad=4)
        for column, label in enumerate(labels):
            ax.add_patch(Rectangle((column * (width + PAD) + PAD / 2 - 0.5,
                                    label * (height + PAD) + PAD / 2 - 0.5),
                                   width + PAD, height + PAD, fill=False, lw=1.2,
                                   edgecolor=TRUE_CLASS_COLOUR))
    for ax in axes[:, 0]:
        ax.tick_params(length=0, pad=2)
        for spine in ax.spines.values():
            spine.set_visible(False)
    fig.text(0.99, 0.0, "grey: zero gradient; frame: the true class", ha="right", va="top",
             fontsize=FONT_PT, color=TRUE_CLASS_COLOUR)
    fig.tight_layout(h_pad=0.2)
    save_figure(fig, out, info=info)


def _centres(n: int, size: int) -> list[float]:
    """Pixel centres of ``n`` cells of ``size`` along one axis of an image grid."""
    return [PAD + index * (size + PAD) + size / 2 - 0.5 for index in range(n)]
