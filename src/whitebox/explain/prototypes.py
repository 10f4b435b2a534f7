"""Where the parts of a prototype network match, and which training patches they are.

A prototype network (ProtoPNet with flexible parts, :class:`whitebox.layers.PartPrototypes`)
explains a prediction by its prototypes: each part of a prototype is looked for everywhere in
the latent map and matches at one cell; after a push, each part *is* the latent vector of one
cell of one training image (``push_source``). :func:`prototype_part_matches` computes, for a
few images, the best-scoring prototypes of the predicted class, where their parts match and
what they were pushed to; :func:`push_patch_distances` checks whether a part still equals its
training patch (it does not if it was trained after its last push); :func:`cell_box` and
:func:`patch_box` turn a latent cell into the image region a figure draws. Model and tensors
in, no files.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from whitebox.layers.prototypes import PartPrototypes


@dataclass(frozen=True)
class PrototypePartMatches:
    """The top prototypes of the predicted class for ``N`` images, ``k`` prototypes each.

    ``predicted`` ``(N,)`` the predicted classes, ``logits`` ``(N, n_classes)``;
    ``prototypes`` ``(N, k)`` long, best first (by prototype score); ``scores`` ``(N, k)``
    their scores; ``locations`` ``(N, k, parts, 2)`` long, the (y, x) latent cell where each
    part matches best in the image; ``push_source`` ``(N, k, parts, 3)`` long, the (training
    image index, y, x) each part was pushed to, -1 before any push. ``map_size`` is the latent
    map's (h, w), ``image_size`` the images' (H, W). ``cell_geometry`` is ``(jump,
    receptive_field)`` in pixels when the backbone states them (BagNet: cell (y, x) sees
    exactly the pixels from ``jump * y`` on, ``receptive_field`` wide), else None (the cells
    then tile the image evenly, which is how a ResNet's padded map lines up).
    """

    predicted: torch.Tensor
    logits: torch.Tensor
    prototypes: torch.Tensor
    scores: torch.Tensor
    locations: torch.Tensor
    push_source: torch.Tensor
    map_size: tuple[int, int]
    image_size: tuple[int, int]
    cell_geometry: tuple[int, int] | None = None

    @property
    def parts(self) -> int:
        return int(self.locations.shape[2])

    @property
    def pushed(self) -> torch.Tensor:
        """``(N, k, parts)`` bool: the part has a training patch (was pushed)."""
        return self.push_source[..., 0] >= 0


def prototype_layer(model: nn.Module) -> PartPrototypes:
    """The one PartPrototypes layer of ``model``; a ValueError without one or with several."""
    layers = [m for m in model.modules() if isinstance(m, PartPrototypes)]
    if len(layers) != 1:
        raise ValueError(f"expected one PartPrototypes layer in the model, found {len(layers)}")
    return layers[0]


@torch.no_grad()
def prototype_part_matches(classifier: nn.Module, images: torch.Tensor,
                           n_prototypes: int) -> PrototypePartMatches:
    """The ``n_prototypes`` best-scoring prototypes of each image's predicted class.

    ``classifier`` takes ``images`` ``(N, C, H, W)`` (in [0, 1] for a whitebox classifier)
    and contains one PartPrototypes layer; it runs once in eval mode (its mode is restored)
    and the layer's input, the latent map, gives the part locations. ``k`` is
    ``n_prototypes`` or fewer if a predicted class has fewer prototypes.
    """
    if n_prototypes < 1:
        raise ValueError(f"n_prototypes must be >= 1, got {n_prototypes}")
    if images.dim() != 4 or images.shape[0] < 1:
        raise ValueError(f"images must be (N, C, H, W) with N >= 1, got {tuple(images.shape)}")
    layer = prototype_layer(classifier)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        captured["z"], captured["scores"] = inputs[0].detach(), output.detach()

    was_training = classifier.training
    handle = layer.register_forward_hook(keep)
    try:
        classifier.eval()
        logits = classifier(images).detach().float()
    finally:
        handle.remove()
        classifier.train(was_training)
    z, scores = captured["z"], captured["scores"].float()
    predicted = logits.argmax(dim=1)
    own = layer.prototype_class[None, :] == predicted[:, None]  # (N, P)
    k = min(n_prototypes, int(own.sum(dim=1).min()))
    if k < 1:
        missing = sorted({int(c) for c in predicted[own.sum(dim=1) == 0]})
        raise ValueError(f"predicted class(es) {missing} have no prototypes")
    ranked = scores.masked_fill(~own, float("-inf"))
    top = torch.sort(ranked, dim=1, descending=True, stable=True).indices[:, :k]  # (N, k)
    locations = layer.part_locations(z)  # (N, P, parts, 2)
    rows = torch.arange(images.shape[0], device=top.device)[:, None]
    return PrototypePartMatches(
        predicted=predicted.cpu(),
        logits=logits.cpu(),
        prototypes=top.cpu(),
        scores=scores[rows, top].cpu(),
        locations=locations[rows, top].cpu(),
        push_source=layer.push_source[top].cpu(),
        map_size=(int(z.shape[-2]), int(z.shape[-1])),
        image_size=(int(images.shape[-2]), int(images.shape[-1])),
        cell_geometry=cell_geometry(classifier),
    )


def cell_geometry(model: nn.Module) -> tuple[int, int] | None:
    """``(jump, receptive_field)`` of the first module that states both (BagNet backbones),
    else None."""
    for module in model.modules():
        jump, field = getattr(module, "jump", None), getattr(module, "receptive_field", None)
        if isinstance(jump, int) and isinstance(field, int):
            return jump, field
    return None


# A part counts as moved since its push when it differs from its training patch's latent vector
# by more than this root-mean-square per channel. Latent channels lie in [0, 1] (the add-on's
# sigmoid); the push runs under bfloat16 autocast on a GPU while this check recomputes in
# float32, which differs by up to ~0.02 RMS per cell (measured with CPU bfloat16 autocast on
# randomly initialised ResNet34 and BagNet-33 networks at 224 px), so the threshold leaves a 5x
# margin; epochs of training after a push move parts further.
MOVED_RMS = 0.1


@torch.no_grad()
def push_patch_distances(classifier: nn.Module, train_images: torch.Tensor,
                         matches: PrototypePartMatches, batch_size: int = 32) -> torch.Tensor:
    """Root-mean-square difference per latent channel between each shown part and the latent
    vector of the training cell it was pushed to: ``(N, k, parts)``, NaN where not pushed.

    Right after a push this is 0 (up to rounding: the part *is* that patch); a part trained
    further after its last push has moved (more than :data:`MOVED_RMS`), and its tile then
    shows the patch it was pushed to, not one it equals. ``train_images`` is the training
    split in the order the push saw it (uint8, or float in [0, 1]); only the pushed-to images
    are forwarded, ``batch_size`` at a time, in eval mode (restored afterwards).
    """
    layer = prototype_layer(classifier)
    distances = torch.full(matches.pushed.shape, float("nan"))
    if not matches.pushed.any():
        return distances
    source = matches.push_source
    indices = sorted({int(i) for i in source[..., 0][matches.pushed]})
    latents: list[torch.Tensor] = []

    def keep(_module: nn.Module, inputs: tuple, _output: torch.Tensor) -> None:
        latents.append(inputs[0].detach().float().cpu())

    was_training = classifier.training
    handle = layer.register_forward_hook(keep)
    try:
        classifier.eval()
        device = layer.parts_vectors.device
        for first in range(0, len(indices), batch_size):
            images = train_images[indices[first:first + batch_size]]
            images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
            classifier(images.to(device))
    finally:
        handle.remove()
        classifier.train(was_training)
    z = torch.cat(latents)
    row = {index: position for position, index in enumerate(indices)}
    vectors = layer.parts_vectors.detach().float().cpu()
    for n, rank, part in matches.pushed.nonzero().tolist():
        index, y, x = (int(v) for v in source[n, rank, part])
        patch = z[row[index], :, y, x]
        part_vector = vectors[int(matches.prototypes[n, rank]), part]
        distances[n, rank, part] = (part_vector - patch).pow(2).mean().sqrt()
    return distances


def _cell_centre_and_size(index: int, cells: int, pixels: int,
                          geometry: tuple[int, int] | None) -> tuple[float, float]:
    """Centre and side in pixels of latent cell ``index`` of ``cells`` along one axis."""
    if geometry is None:
        return (index + 0.5) * pixels / cells, pixels / cells
    jump, field = geometry
    return jump * index + field / 2, float(field)


def cell_box(cell: tuple[int, int], map_size: tuple[int, int], image_size: tuple[int, int],
             scale: float = 1.0,
             geometry: tuple[int, int] | None = None) -> tuple[float, float, float, float]:
    """The image region of latent cell ``(y, x)``: ``(top, left, height, width)`` in pixels.

    A cell covers ``image size / map size`` pixels, or with ``geometry`` ``(jump,
    receptive_field)`` exactly its receptive field; ``scale > 1`` enlarges the box about the
    cell's centre (clipped to the image), e.g. to include some of the receptive field.
    """
    y, x = cell
    centre_y, cell_h = _cell_centre_and_size(y, map_size[0], image_size[0], geometry)
    centre_x, cell_w = _cell_centre_and_size(x, map_size[1], image_size[1], geometry)
    half_h, half_w = scale * cell_h / 2, scale * cell_w / 2
    top, left = max(0.0, centre_y - half_h), max(0.0, centre_x - half_w)
    bottom = min(float(image_size[0]), centre_y + half_h)
    right = min(float(image_size[1]), centre_x + half_w)
    return top, left, bottom - top, right - left


def patch_box(cell: tuple[int, int], map_size: tuple[int, int], image_size: tuple[int, int],
              context: float = 2.0,
              geometry: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """Whole-pixel ``(top, left, height, width)`` of the crop around cell ``(y, x)``: a window
    ``context`` times the cell's size (at most the image; with ``geometry``, the receptive
    field itself) centred on the cell, shifted to lie inside the image, so every crop of one
    image size has the same size and contains its cell."""
    y, x = cell
    boxes = []
    for index, cells, pixels in ((y, map_size[0], image_size[0]), (x, map_size[1], image_size[1])):
        centre, side = _cell_centre_and_size(index, cells, pixels, geometry)
        size = min(pixels, max(1, round(side if geometry else context * side)))
        start = min(max(0, round(centre - size / 2)), pixels - size)
        boxes.append((start, size))
    (top, height), (left, width) = boxes
    return top, left, height, width
