"""The log's continual "accuracy after slot update" metric for Incremental Neural Hashing.

Protocol (one seeded permutation splits the test set in two halves):

1. Pass 1 over the *update* half A, unlabelled: predictions, and which examples no slot
   matches (best margin < 0).
2. Only those unmatched examples of A get their labels revealed; the fewest new slots
   covering them are added (``add_slots``: greedy set cover, thresholds with 100 %
   precision on the revealed examples) to a *copy* of the model.
3. Pass 2 over A and over the *held-out* half B, whose labels are never revealed, so
   the gain on B is not memorisation.

What is guaranteed: every revealed example a new slot covers is matched afterwards by
a slot of its own class, and no new slot of another class reaches it (its threshold is
above that slot's similarity to every revealed example of another class). With max
pooling (the old slots all had negative margins on it) it is therefore classified
correctly. Examples that were matched before stay matched (slots are only added), but
their predictions may change: new thresholds know nothing about them. So accuracy on A
as a whole, and on B, may go down (and on small test sets it does: thresholds set on a
few revealed examples are loose); both are reported. The option
``reference="revealed+predicted"`` also keeps the new thresholds above A's matched
examples of other *predicted* classes, which freezes their predictions (max pooling).

The curve "accuracy vs number of new slots" adds the chosen slots in greedy order
(``add_slots`` appends them in that order). Margins to every slot are computed once;
with max pooling every k is evaluated (one class column updated per slot), with
SoftMaxPool at most ``curve_points`` log-spaced k (0 and the final count included).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from whitebox.evaluation.ood import _percent, features_of, inh_layer, inh_predictions
from whitebox.layers.hashing import IncrementalNeuralHashing, pool_by_class

DEFAULT_CURVE_POINTS = 30
REFERENCES = ("revealed", "revealed+predicted")


def curve_steps(n_new: int, points: int) -> list[int]:
    """About ``points`` log-spaced slot counts in [0, n_new], always with 0 and n_new."""
    if points < 2:
        raise ValueError(f"curve_points must be at least 2, got {points}")
    if n_new + 1 <= points:
        return list(range(n_new + 1))
    if points == 2:
        return [0, n_new]
    ratio = n_new ** (1.0 / (points - 2))  # points - 1 values 1 .. n_new, plus 0
    return sorted({0, n_new} | {min(n_new, round(ratio ** i)) for i in range(points - 1)})


@torch.no_grad()
def _accuracy_curve(layer: IncrementalNeuralHashing, features: torch.Tensor, labels: torch.Tensor,
                    groups: list[torch.Tensor], n_old: int, steps: list[int] | None
                    ) -> tuple[list[int], list[list[float]]]:
    """Accuracy (%) of each index group with the first ``n_old + k`` slots, for k in ``steps``.

    ``steps`` None: every k (max pooling only, incremental).
    """
    margins = layer.slot_margins(features)
    n_new = layer.n_slots - n_old
    temperature = layer.temperature if layer.pooling == "softmax" else None

    def accuracies(scores: torch.Tensor) -> list[float]:
        correct = (layer.scale * scores).argmax(dim=1) == labels
        return [round(100.0 * correct[index].float().mean().item(), 4) if index.numel() else None
                for index in groups]

    curves: list[list[float]] = []
    if steps is None:
        steps = list(range(n_new + 1))
        scores = pool_by_class(margins[:, :n_old], layer.slot_labels[:n_old], layer.n_classes, None)
        curves.append(accuracies(scores))
        for slot in range(n_old, n_old + n_new):
            column = int(layer.slot_labels[slot])
            scores[:, column] = torch.maximum(scores[:, column], margins[:, slot])
            curves.append(accuracies(scores))
    else:
        for k in steps:
            scores = pool_by_class(margins[:, :n_old + k], layer.slot_labels[:n_old + k],
                                   layer.n_classes, temperature)
            curves.append(accuracies(scores))
    return steps, [list(column) for column in zip(*curves, strict=True)]


def _half_stats(predictions: torch.Tensor, margins: torch.Tensor, labels: torch.Tensor) -> dict:
    n = int(labels.numel())
    unmatched = int((margins < 0).sum())
    return {"accuracy": _percent((predictions == labels).sum(), n),
            "unmatched": unmatched, "unmatched_pct": _percent(unmatched, n)}


@torch.no_grad()
def continual_slot_update(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          seed: int = 0, curve_points: int | None = None,
                          reference: str = "revealed", batch_size: int = 1000) -> dict:
    """The continual slot-update evaluation (see module doc) of an INH classifier.

    ``images`` uint8 ``(N, C, H, W)`` and ``labels`` int64 on the model's device (the test
    set). ``seed`` fixes the split into halves A (first ``N // 2`` of a permutation) and
    B. ``curve_points``: None = every k with max pooling, else 30 log-spaced k; an int =
    at most that many log-spaced k. ``reference``: what the new slots' thresholds keep
    100 % precision on: ``revealed`` (the revealed examples, the log's protocol) or
    ``revealed+predicted`` (also A's matched examples, labelled by their pass-1
    predictions: no label is revealed for them, and with max pooling their predictions
    cannot change). The caller's model is not changed (the slots go to a copy of its INH
    layer). Returns::

        {seed, reference, n_update, n_held_out, slots_before, slots_after, new_slots,
         labels_revealed,                  # = unmatched examples of A (labelling cost)
         update:   {before: {accuracy %, unmatched, unmatched_pct}, after: {...}},
         held_out: {before: {...}, after: {...}},
         revealed: {n, covered, accuracy_before %, accuracy_after %},
         retained: {n, accuracy_after %},   # test examples correct before: still correct?
         curve: {new_slots: [k...], accuracy_update: [%...], accuracy_held_out: [%...]}}
    """
    if labels.shape != images.shape[:1] or labels.dtype != torch.long:
        raise ValueError(f"labels must be int64 of shape ({images.shape[0]},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {', '.join(REFERENCES)}, got {reference!r}")
    layer = inh_layer(model)
    n = int(labels.numel())
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(labels.device)
    update_index, held_out_index = order[:n // 2], order[n // 2:]

    features = features_of(model, images, batch_size)
    before_predictions = inh_predictions(model, features)
    before_margins = layer.best_margin(features)

    unmatched = update_index[before_margins[update_index] < 0]  # only these labels are revealed
    updated = copy.deepcopy(layer).eval()
    n_old = layer.n_slots
    if unmatched.numel():
        revealed = (features[unmatched], labels[unmatched])
        if reference == "revealed":
            thresholds_on = revealed
        else:  # pass-1 predictions stand in for the labels of A's matched examples
            matched = update_index[before_margins[update_index] >= 0]
            thresholds_on = (torch.cat([revealed[0], features[matched]]),
                             torch.cat([revealed[1], before_predictions[matched]]))
        updated.add_slots(*revealed, reference=thresholds_on)
    n_new = updated.n_slots - n_old

    after_predictions = updated(features).argmax(dim=1)
    after_margins = updated.best_margin(features)

    if curve_points is None:
        steps = None if layer.pooling == "max" else curve_steps(n_new, DEFAULT_CURVE_POINTS)
    else:
        steps = curve_steps(n_new, curve_points)
    steps, (curve_update, curve_held_out) = _accuracy_curve(
        updated, features, labels, [update_index, held_out_index], n_old, steps)

    def half(index: torch.Tensor) -> dict:
        return {"before": _half_stats(before_predictions[index], before_margins[index], labels[index]),
                "after": _half_stats(after_predictions[index], after_margins[index], labels[index])}

    n_revealed = int(unmatched.numel())
    correct_before = before_predictions == labels
    return {
        "seed": seed,
        "reference": reference,
        "n_update": int(update_index.numel()),
        "n_held_out": int(held_out_index.numel()),
        "slots_before": n_old,
        "slots_after": updated.n_slots,
        "new_slots": n_new,
        "labels_revealed": n_revealed,
        "update": half(update_index),
        "held_out": half(held_out_index),
        "revealed": {
            "n": n_revealed,
            "covered": int((after_margins[unmatched] >= 0).sum()),
            "accuracy_before": _percent((before_predictions[unmatched] == labels[unmatched]).sum(),
                                        n_revealed),
            "accuracy_after": _percent((after_predictions[unmatched] == labels[unmatched]).sum(),
                                       n_revealed),
        },
        # Forgetting: of the test examples (both halves) the model classified correctly before
        # the update, the share it still classifies correctly after it.
        "retained": {
            "n": int(correct_before.sum()),
            "accuracy_after": _percent((after_predictions[correct_before]
                                        == labels[correct_before]).sum(), int(correct_before.sum())),
        },
        "curve": {"new_slots": steps, "accuracy_update": curve_update,
                  "accuracy_held_out": curve_held_out},
    }



def evaluate(job) -> dict:
    """The ``slot_update`` evaluation kind: both protocols on the run's test split."""
    test = job.test_split()
    return {reference: continual_slot_update(job.model, test.images, test.labels, seed=job.seed,
                                             reference=reference)
            for reference in REFERENCES}
