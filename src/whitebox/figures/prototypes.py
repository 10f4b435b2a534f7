"""Where a prototype network's parts match, next to the training patches they were pushed to
(log, 01.07-22.07.2024: ProtoPNet and prototypes with flexible parts on CUB-200).

:func:`save_prototype_parts` draws one row per test image: the image with a coloured box per
part of the best-scoring prototypes of the predicted class (one colour per prototype), then,
for each of those prototypes, one tile per part: the crop of the training image the part was
pushed to, around the pushed cell (outlined in the prototype's colour), or a grey "not
pushed" tile. The numbers come from :func:`whitebox.explain.prototypes.prototype_part_matches`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from whitebox.explain.prototypes import (  # noqa: E402
    MOVED_RMS,
    PrototypePartMatches,
    cell_box,
    patch_box,
)
from whitebox.figures.grids import save_figure  # noqa: E402

PROTOTYPE_CMAP = "tab10"  # colour of the prototype ranked i (best first)
PANEL_INCHES = 1.0  # one part tile; the image panel is IMAGE_PANELS tiles wide and high
IMAGE_PANELS = 1.6
BOX_SCALE = 1.0  # a part's box on the image: its latent cell (image size / map size)
PATCH_CONTEXT = 2.0  # a training patch: a window twice the cell size around the pushed cell
NOT_PUSHED_GREY = 0.8


def short_class_name(name: str) -> str:
    """``"001.Black_footed_Albatross"`` -> ``"Black footed Albatross"`` (CUB's folder names)."""
    return re.sub(r"^\d+\.", "", str(name)).replace("_", " ")


def _as_rgb(image: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` uint8 or float in [0, 1] -> ``(H, W, 3)`` float in [0, 1]."""
    image = image.detach().cpu()
    image = image.float() / 255 if image.dtype == torch.uint8 else image.float()
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def save_prototype_parts(images: torch.Tensor, labels: Sequence[int], matches: PrototypePartMatches,
                         class_names: Sequence[str], path: Path,
                         train_images: torch.Tensor | None = None, title: str = "",
                         info: dict | None = None, box_scale: float = BOX_SCALE,
                         patch_context: float = PATCH_CONTEXT,
                         push_distances: torch.Tensor | None = None) -> dict:
    """One row per image of ``images`` ``(N, C, H, W)`` (true classes ``labels``); returns the
    description stored in the PNG (``info`` plus what was drawn).

    Columns: the image with one box per part of each of the ``k`` prototypes in ``matches``
    (the part's best-matching latent cell, ``box_scale`` times the cell size, numbered by part),
    then ``k`` groups of ``parts`` tiles: the crop of ``train_images[i]`` (``patch_context``
    times the cell size) around the cell ``(y, x)`` that the part was pushed to, for
    ``push_source = (i, y, x)``, or a grey tile when the part was never pushed (or no training
    images are given). A row's title names the true and predicted class and the prototypes.
    ``push_distances`` ``(N, k, parts)`` (from ``push_patch_distances``) marks the tiles of
    parts that moved since their push (more than ``MOVED_RMS``) and counts them in the PNG.
    """
    n_images, k = matches.prototypes.shape
    parts = matches.parts
    if images.dim() != 4 or images.shape[0] != n_images:
        raise ValueError(f"{tuple(images.shape)} images for matches of {n_images} images")
    if len(labels) != n_images:
        raise ValueError(f"{len(labels)} labels for {n_images} images")
    pushed = matches.pushed.clone()
    if train_images is None:
        pushed[:] = False
    elif pushed.any() and int(matches.push_source[..., 0].max()) >= train_images.shape[0]:
        raise ValueError(f"a part was pushed to training image "
                         f"{int(matches.push_source[..., 0].max())} but only "
                         f"{train_images.shape[0]} training images were given")
    moved = torch.zeros_like(pushed)
    if push_distances is not None:
        if push_distances.shape != pushed.shape:
            raise ValueError(f"push distances {tuple(push_distances.shape)} for "
                             f"{tuple(pushed.shape)} parts")
        moved = pushed & (push_distances.nan_to_num(0.0) > MOVED_RMS)
    colours = plt.get_cmap(PROTOTYPE_CMAP)
    n_tiles = k * parts
    width_ratios = [IMAGE_PANELS] + [1.0] * n_tiles
    fig = plt.figure(figsize=(PANEL_INCHES * (IMAGE_PANELS + n_tiles) + 0.4,
                              PANEL_INCHES * (IMAGE_PANELS + 0.55) * n_images + (0.4 if title else 0)),
                     layout="constrained")
    rows = fig.subfigures(n_images, 1, squeeze=False)[:, 0]
    described = []
    for row, subfig in enumerate(rows):
        true_name = short_class_name(class_names[int(labels[row])])
        predicted_name = short_class_name(class_names[int(matches.predicted[row])])
        prototype_ids = [int(p) for p in matches.prototypes[row]]
        subfig.suptitle(f"true: {true_name}, predicted: {predicted_name}; "
                        f"prototypes {', '.join(map(str, prototype_ids))}", fontsize=8)
        grid = subfig.add_gridspec(1, 1 + n_tiles, width_ratios=width_ratios)
        ax = subfig.add_subplot(grid[0, 0])
        ax.imshow(_as_rgb(images[row]), interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        for rank in range(k):
            colour = colours(rank % 10)
            for part in range(parts):
                y, x = (int(v) for v in matches.locations[row, rank, part])
                top, left, height, width = cell_box((y, x), matches.map_size, matches.image_size,
                                                    box_scale, matches.cell_geometry)
                ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False,
                                       edgecolor=colour, linewidth=1.3))
                if parts > 1:
                    ax.text(left, top, str(part + 1), color="white", fontsize=5, va="top",
                            ha="left", bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5})
            for part in range(parts):
                tile = subfig.add_subplot(grid[0, 1 + rank * parts + part])
                source = [int(v) for v in matches.push_source[row, rank, part]]
                _draw_patch(tile, train_images, source, bool(pushed[row, rank, part]), matches,
                            colour, patch_context, moved=bool(moved[row, rank, part]))
                tile.set_title(f"P{prototype_ids[rank]}" + (f" part {part + 1}" if parts > 1 else ""),
                               fontsize=6, color=colour)
        described.append({"true": class_names[int(labels[row])],
                          "predicted": class_names[int(matches.predicted[row])],
                          "prototypes": prototype_ids})
    if title:
        fig.suptitle(title, fontsize=10)
    description = {**(info or {}), "n_images": n_images, "n_prototypes": k, "parts": parts,
                   "pushed": bool(pushed.all()), "pushed_parts": int(pushed.sum()),
                   "shown_parts": int(pushed.numel()),
                   "moved_parts": int(moved.sum()) if push_distances is not None else None,
                   "map_size": list(matches.map_size),
                   "image_size": list(matches.image_size), "box_scale": box_scale,
                   "cell_geometry": list(matches.cell_geometry) if matches.cell_geometry else None,
                   "patch_context": patch_context, "rows": described}
    save_figure(fig, path, info=description)
    return description


def _draw_patch(ax: plt.Axes, train_images: torch.Tensor | None, source: list[int], pushed: bool,
                matches: PrototypePartMatches, colour, context: float, moved: bool = False) -> None:
    """One part tile: the training crop around the pushed cell, or grey "not pushed"."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(1.2)
    if not pushed or train_images is None:
        ax.imshow(np.full((8, 8, 3), NOT_PUSHED_GREY), vmin=0, vmax=1)
        ax.text(3.5, 3.5, "not\npushed", ha="center", va="center", fontsize=6, color="0.3")
        return
    index, y, x = source
    image_size = tuple(int(s) for s in train_images.shape[-2:])
    top, left, height, width = patch_box((y, x), matches.map_size, image_size, context,
                                         matches.cell_geometry)
    crop = _as_rgb(train_images[index])[top:top + height, left:left + width]
    ax.imshow(crop, interpolation="bilinear" if min(height, width) > 8 else "nearest")
    cell_top, cell_left, cell_height, cell_width = cell_box((y, x), matches.map_size, image_size,
                                                            geometry=matches.cell_geometry)
    ax.add_patch(Rectangle((cell_left - left - 0.5, cell_top - top - 0.5), cell_width, cell_height,
                           fill=False, edgecolor=colour, linewidth=0.8, linestyle="--"))
    ax.set_xlabel(f"train #{index}" + (" (moved since)" if moved else ""), fontsize=5, labelpad=1)


def render_prototype_parts(job) -> None:
    """The ``prototype_parts`` kind: where the best prototypes' parts match on the first test
    images, and the training patches they were pushed to."""
    from whitebox.errors import ConfigError
    from whitebox.explain.prototypes import prototype_part_matches, push_patch_distances
    from whitebox.layers.prototypes import PartPrototypes

    model, state = job.trained
    spec = state["spec"]
    if not any(isinstance(module, PartPrototypes) for module in model.modules()):
        raise ConfigError(f"the prototype_parts figure needs a prototype network (model: "
                          f"prototype_network); experiment '{spec['name']}' uses '{spec['model']}'")
    n_images = job.options["n_images"]
    # The training split in its stored order: push_source indexes it as training did.
    data = job.prepared()
    images = data.test.images[:n_images].float() / 255
    try:
        matches = prototype_part_matches(model, images, job.options["n_prototypes"])
    except ValueError as error:
        raise ConfigError(f"experiment '{spec['name']}': {error}") from None
    if matches.pushed.any() and int(matches.push_source[..., 0].max()) >= len(data.train):
        raise ConfigError(f"{job.model} was pushed to training image "
                          f"{int(matches.push_source[..., 0].max())} but {job.data} has "
                          f"{len(data.train)} training images; pass the dataset the model was trained on")
    save_prototype_parts(images, data.test.labels[:n_images].tolist(), matches,
                         list(state["classes"]), job.out, train_images=data.train.images,
                         title=f"{job.titled()}: prototype parts",
                         info={"experiment": spec["name"],
                               "requested_prototypes": job.options["n_prototypes"]},
                         push_distances=push_patch_distances(model, data.train.images, matches))
