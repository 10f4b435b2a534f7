"""Incremental Neural Hashing (INH): a classifier head of slots that grows when data goes unmatched.

A slot is a unit vector with a class label and a threshold. An input (L2-normalised)
matches a slot when their cosine similarity reaches the slot's threshold; thresholds are
set so that a slot keeps 100 % precision on the labelled batch (nothing of another class
reaches it). The layer is therefore an ensemble of high-precision label detectors:

* class score = pooling (max or SoftMaxPool) over the class's slots of the *margin*
  ``similarity - threshold``; an input no slot matches (all margins < 0) is flagged.
* growth: labelled examples that no slot of their own class matches must be covered; the
  fewest candidate slots (the unmatched examples, or any example of the batch) covering
  all of them are chosen by greedy set cover and appended.
  (The ablation ``selection: naive`` appends every unmatched example as a slot of its own.)
* pruning: slots that matched nothing during an epoch are removed at its end.
* the slots are trained by their own stateless SGD step (no momentum), so growing and
  pruning never leaves optimiser state behind; other parameters (the logit scale, a
  backbone) use the run's optimiser.

Loss (the log leaves it open): cross-entropy over ``scale * pooled margins`` with
*batch* thresholds that stay in the graph. A slot's batch threshold is its highest
similarity to an example of another class, so raising its own-class margin means moving
toward its positives *and* away from its hardest negative: a triplet-style objective whose
optimum is a detector that fires on its class and nothing else.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from whitebox.layers.base import GrowingLayer
from whitebox.layers.set_cover import greedy_set_cover, naive_cover

EMPTY_CLASS_SCORE = -2.0  # below any margin (cosine similarities lie in [-1, 1])


def similarities(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(n, d), (m, d) -> (n, m)`` dot products (cosine similarities of unit rows), each entry
    the same number however it is computed: whatever the other rows in the batch, the order of
    the operands, the thread count or the BLAS kernel.

    A float32 GEMM sums its products in an order that depends on its blocking (the thread count,
    the matrix shapes), so the same pair can differ in the last bit between two products. INH
    turns such bits into decisions: a slot's threshold sits ``eps`` above its hardest negative,
    so that negative's margins to all slots it is hardest for tie at ``-eps`` up to rounding, and
    the max pooling's winner (the slot its gradient moves), growth and pruning follow the last
    bit. Products of float32 numbers are exact in float64 and the float64 sum errs far below a
    float32 ulp, so the float32 rounding of the float64 product is the same number in every case
    (unless the float64 sum's own rounding error straddles a float32 rounding boundary, which is
    rare). About 2-3x the cost of the float32 product on a CPU. On a GPU, where results are not
    promised bit for bit and float64 is slow on most cards, it is the plain product.
    Differentiable; the result has ``a``'s dtype.
    """
    if a.device.type != "cpu":
        return a @ b.t()
    return (a.double() @ b.double().t()).to(a.dtype)


def precision_thresholds(similarity: torch.Tensor, slot_labels: torch.Tensor,
                         labels: torch.Tensor, eps: float = 1e-4,
                         floor: float = 0.0) -> torch.Tensor:
    """Lowest threshold per slot that keeps its precision at 100 % on the batch.

    ``similarity`` is ``(batch, slots)``. The threshold is just above the slot's highest
    similarity to an example of another class (and at least ``floor``), so every example
    at or above it has the slot's label. Differentiable through that maximum.
    """
    other_class = labels.view(-1, 1) != slot_labels.view(1, -1)
    negatives = similarity.masked_fill(~other_class, float("-inf"))
    return (negatives.max(dim=0).values + eps).clamp_min(floor)


def pool_by_class(margins: torch.Tensor, slot_labels: torch.Tensor, n_classes: int,
                  temperature: float | None) -> torch.Tensor:
    """``(batch, slots) -> (batch, classes)``: max (temperature None) or SoftMaxPool per class."""
    batch = margins.shape[0]
    index = slot_labels.view(1, -1).expand(batch, -1)
    floor = torch.full((batch, n_classes), EMPTY_CLASS_SCORE, dtype=margins.dtype,
                       device=margins.device)
    best = floor.scatter_reduce(1, index, margins, reduce="amax", include_self=True)
    if temperature is None:
        return best
    weights = torch.exp((margins - best.detach().gather(1, index)) / temperature)
    numerator = torch.zeros_like(floor).scatter_add(1, index, weights * margins)
    denominator = torch.zeros_like(floor).scatter_add(1, index, weights)
    has_slots = denominator > 0
    return torch.where(has_slots, numerator / denominator.clamp_min(1e-12), floor)


class IncrementalNeuralHashing(GrowingLayer):
    """Slots with labels, 100 %-precision thresholds and activation counters (see module doc).

    Args:
        in_features: size of the (flattened) input representation.
        n_classes: number of labels.
        pooling: ``max`` or ``softmax`` (SoftMaxPool over a class's slots).
        temperature: SoftMaxPool temperature.
        training_thresholds: ``batch`` (computed on each batch, in the graph) or
            ``running`` (the running averages, as at evaluation).
        momentum: weight of a new batch threshold in the running average.
        lr: step size of the slots' own SGD.
        scale: initial logit scale (learnable).
        candidates: where growth picks new slots: ``unmatched`` (the unmatched examples
            themselves) or ``batch`` (any example of the batch with the right label, which
            may cover several unmatched ones more centrally).
        selection: ``greedy`` (greedy set cover over the candidates) or ``naive`` (the
            ablation: every unmatched example becomes a slot; candidates must be ``unmatched``).
    """

    # Its whole training state (slots, their labels, running thresholds and this epoch's
    # activation counters) lives in the state_dict, so a mid-epoch checkpoint restores it.
    mid_epoch_resumable = True

    def __init__(self, in_features: int, n_classes: int, pooling: str = "max",
                 temperature: float = 0.1, training_thresholds: str = "batch",
                 momentum: float = 0.1, lr: float = 0.05, scale: float = 10.0,
                 candidates: str = "unmatched", selection: str = "greedy") -> None:
        super().__init__()
        if pooling not in ("max", "softmax"):
            raise ValueError(f"pooling must be 'max' or 'softmax', got {pooling!r}")
        if candidates not in ("unmatched", "batch"):
            raise ValueError(f"candidates must be 'unmatched' or 'batch', got {candidates!r}")
        if selection not in ("greedy", "naive"):
            raise ValueError(f"selection must be 'greedy' or 'naive', got {selection!r}")
        if selection == "naive" and candidates != "unmatched":
            raise ValueError("selection 'naive' makes every unmatched example a slot; "
                             "leave candidates at 'unmatched'")
        if training_thresholds not in ("batch", "running"):
            raise ValueError(f"training_thresholds must be 'batch' or 'running', "
                             f"got {training_thresholds!r}")
        self.in_features = in_features
        self.n_classes = n_classes
        self.pooling = pooling
        self.temperature = temperature
        self.training_thresholds = training_thresholds
        self.momentum = momentum
        self.lr = lr
        self.candidates = candidates
        self.selection = selection
        self.weight = nn.Parameter(torch.empty(0, in_features))
        self.scale = nn.Parameter(torch.tensor(float(scale)))
        self.register_buffer("slot_labels", torch.empty(0, dtype=torch.long))
        self.register_buffer("thresholds", torch.empty(0))
        self.register_buffer("activations", torch.empty(0, dtype=torch.long))
        self.targets: torch.Tensor | None = None
        self.slots_added = 0

    # -- the hooks the training loop calls -------------------------------------------
    def set_targets(self, labels: torch.Tensor | None) -> None:
        self.targets = labels

    def owned_parameters(self) -> list[nn.Parameter]:
        return [self.weight]

    @torch.no_grad()
    def sgd_step(self, lr_factor: float = 1.0) -> None:
        if self.weight.grad is not None:
            self.weight.add_(self.weight.grad, alpha=-self.lr * lr_factor)
            self.weight.grad = None
        self.weight.copy_(F.normalize(self.weight, dim=1))

    @torch.no_grad()
    def end_epoch(self) -> int:
        """Remove the slots that matched nothing this epoch; return how many went."""
        keep = self.activations > 0
        removed = int((~keep).sum())
        if removed:
            self._set_slots(self.weight[keep], self.slot_labels[keep], self.thresholds[keep])
        self.activations.zero_()
        return removed

    # -- forward ------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return self.weight.shape[0]

    def n_units(self) -> int:
        return self.n_slots

    def metrics_fields(self, name: str, n_train: int) -> dict:
        """metrics.json's ``slots`` kept and ``compression`` (training images per slot)."""
        if not self.n_slots:
            return {}
        return {"slots": self.n_slots, "compression": round(n_train / self.n_slots, 2)}

    def slots_per_class(self) -> torch.Tensor:
        return torch.bincount(self.slot_labels, minlength=self.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(batch, n_classes)`` for inputs ``(batch, in_features)`` (or images).

        Always computed in float32, also under autocast: thresholds sit 1e-4 above a
        similarity, finer than bfloat16 can tell apart.
        """
        with torch.autocast(x.device.type, enabled=False):
            return self._forward(self._flatten(x).float())

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        unit = F.normalize(x, dim=1)
        labels = self.targets if self.training else None
        if labels is not None:
            self._check_labels(labels, x)
            self._grow(unit.detach(), labels)
        similarity = similarities(unit, self.weight)
        if labels is not None and self.training_thresholds == "batch":
            thresholds = precision_thresholds(similarity, self.slot_labels, labels)
        else:
            thresholds = self.thresholds
        margins = similarity - thresholds
        if labels is not None:
            self._update_statistics(similarity.detach(), margins.detach(), labels)
        temperature = self.temperature if self.pooling == "softmax" else None
        return self.scale * pool_by_class(margins, self.slot_labels, self.n_classes, temperature)

    @torch.no_grad()
    def slot_margins(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, slots)`` similarity minus running threshold (>= 0: the slot matches)."""
        return similarities(F.normalize(self._flatten(x), dim=1), self.weight) - self.thresholds

    @torch.no_grad()
    def best_margin(self, x: torch.Tensor) -> torch.Tensor:
        """Each input's highest margin over all slots (< 0: no slot matches: flagged)."""
        if self.n_slots == 0:
            return torch.full((x.shape[0],), EMPTY_CLASS_SCORE, device=x.device)
        return self.slot_margins(x).max(dim=1).values

    @torch.no_grad()
    def add_slots(self, x: torch.Tensor, labels: torch.Tensor,
                  reference: tuple[torch.Tensor, torch.Tensor] | None = None,
                  candidates: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Cover the given labelled inputs with the fewest new slots (``selection`` naive: one
        slot per input); return their indices.

        New slots are chosen among ``candidates`` (inputs, labels; default: the inputs to
        cover themselves; naive selection takes no candidates); their thresholds keep 100 %
        precision on ``reference`` (default: the inputs to cover). Used by growth during
        training and by the continual "slot update" evaluation.
        """
        if self.selection == "naive" and candidates is not None:
            raise ValueError("naive selection covers each input by itself; pass no candidates")
        unit = F.normalize(self._flatten(x), dim=1)
        ref_unit, ref_labels = (unit, labels) if reference is None else (
            F.normalize(self._flatten(reference[0]), dim=1), reference[1])
        cand_unit, cand_labels = (unit, labels) if candidates is None else (
            F.normalize(self._flatten(candidates[0]), dim=1), candidates[1])
        thresholds = precision_thresholds(similarities(ref_unit, cand_unit), cand_labels, ref_labels)
        similarity = similarities(cand_unit, unit)  # (candidate, input to cover)
        same_label = cand_labels.view(-1, 1) == labels.view(1, -1)
        coverage = (similarity >= thresholds.view(-1, 1)) & same_label
        chosen = greedy_set_cover(coverage) if self.selection == "greedy" else naive_cover(coverage)
        unit, labels = cand_unit, cand_labels
        first = self.n_slots
        self._set_slots(torch.cat([self.weight.detach(), unit[chosen]]),
                        torch.cat([self.slot_labels, labels[chosen]]),
                        torch.cat([self.thresholds, thresholds[chosen]]))
        self.slots_added += int(chosen.numel())
        return torch.arange(first, self.n_slots, device=x.device)

    # -- internals ------------------------------------------------------------------------
    def _flatten(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1) if x.dim() > 2 else x
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"IncrementalNeuralHashing expects (batch, {self.in_features}) "
                             f"features, got shape {tuple(x.shape)}")
        return x

    def _check_labels(self, labels: torch.Tensor, x: torch.Tensor) -> None:
        if labels.shape != (x.shape[0],) or labels.dtype != torch.long:
            raise ValueError(f"labels must be int64 of shape ({x.shape[0]},), got "
                             f"{labels.dtype} {tuple(labels.shape)}")

    @torch.no_grad()
    def _grow(self, unit: torch.Tensor, labels: torch.Tensor) -> None:
        """Append slots for the examples no slot of their own class matches."""
        if self.n_slots:
            similarity = similarities(unit, self.weight)
            thresholds = (precision_thresholds(similarity, self.slot_labels, labels)
                          if self.training_thresholds == "batch" else self.thresholds)
            own = labels.view(-1, 1) == self.slot_labels.view(1, -1)
            matched = ((similarity >= thresholds) & own).any(dim=1)
        else:
            matched = torch.zeros_like(labels, dtype=torch.bool)
        if matched.all():
            return
        self.add_slots(unit[~matched], labels[~matched], reference=(unit, labels),
                       candidates=(unit, labels) if self.candidates == "batch" else None)

    @torch.no_grad()
    def _update_statistics(self, similarity: torch.Tensor, margins: torch.Tensor,
                           labels: torch.Tensor) -> None:
        batch_thresholds = precision_thresholds(similarity, self.slot_labels, labels)
        self.thresholds.lerp_(batch_thresholds, self.momentum)
        self.activations += (margins >= 0).sum(dim=0)

    def _set_slots(self, weight: torch.Tensor, slot_labels: torch.Tensor,
                   thresholds: torch.Tensor) -> None:
        self.weight = nn.Parameter(weight.contiguous())
        self.slot_labels = slot_labels
        self.thresholds = thresholds.to(self.thresholds.dtype)
        grown = slot_labels.shape[0] - self.activations.shape[0]
        if grown >= 0:
            self.activations = torch.cat([self.activations,
                                          self.activations.new_zeros(grown)])
        else:  # pruned: counters of kept slots were reset by end_epoch
            self.activations = self.activations.new_zeros(slot_labels.shape[0])

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Take the slot count of the checkpoint (a grown layer reloads intact)."""
        key = prefix + "weight"
        if key in state_dict:
            n = state_dict[key].shape[0]
            self._set_slots(self.weight.new_empty(n, self.in_features),
                            self.slot_labels.new_empty(n), self.thresholds.new_empty(n))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, n_classes={self.n_classes}, "
                f"slots={self.n_slots}, pooling={self.pooling}, "
                f"training_thresholds={self.training_thresholds}, selection={self.selection}")
