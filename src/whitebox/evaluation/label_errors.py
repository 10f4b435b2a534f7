"""Does INH expose errors in its training data? (log, 23.12.2024: "it can easily detect errors
in data").

A model trained with ``training: flip_labels`` saw a known share of training images under a
wrong label. A slot keeps 100 % precision, so a mislabelled image cannot share the slots of
its true class: growth gives it a slot of its own, which matches nothing else. The detector:
an image is *flagged* when some slot matches it (margin >= 0, the running thresholds of
evaluation) and every slot that matches it matches no other training image (a *singleton*
slot). Reported: precision (0 when nothing is flagged) and recall (%) of the flag for the
flipped images, the precision a random flag would have (the flipped share), and the share of
flipped images no slot matches.
"""

from __future__ import annotations

import torch

from whitebox.errors import ConfigError
from whitebox.evaluation.ood import _percent, features_of, inh_layer
from whitebox.layers.hashing import IncrementalNeuralHashing
from whitebox.training.label_noise import flip_labels


@torch.no_grad()
def singleton_flags(layer: IncrementalNeuralHashing, features: torch.Tensor,
                    batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(flagged, unmatched, singleton)``: per image, whether only singleton slots match it and
    whether no slot does; per slot, whether it matches exactly one of ``features``."""
    batches = [features[start:start + batch_size] for start in range(0, features.shape[0], batch_size)]
    counts = sum((layer.slot_margins(batch) >= 0).sum(dim=0) for batch in batches)
    singleton = torch.as_tensor(counts == 1, device=features.device)
    flagged, unmatched = [], []
    for batch in batches:
        matches = layer.slot_margins(batch) >= 0
        unmatched.append(~matches.any(dim=1))
        flagged.append(~unmatched[-1] & ~(matches & ~singleton).any(dim=1))
    return torch.cat(flagged), torch.cat(unmatched), singleton


def label_error_report(model, images: torch.Tensor, flipped: torch.Tensor) -> dict:
    """The singleton flag on uint8 training ``images`` against the ``flipped`` indices."""
    flagged, unmatched, singleton = singleton_flags(inh_layer(model), features_of(model, images))
    is_flipped = torch.zeros_like(flagged)
    is_flipped[flipped] = True
    n_flipped = int(is_flipped.sum())
    caught = int((flagged & is_flipped).sum())
    return {"n_train": int(flagged.numel()), "n_flipped": n_flipped,
            "slots": int(singleton.numel()), "singleton_slots": int(singleton.sum()),
            "flagged": int(flagged.sum()),
            "precision": _percent(caught, int(flagged.sum())) or 0.0,
            "recall": _percent(caught, n_flipped),
            "chance_precision": _percent(n_flipped, int(flagged.numel())),
            "flipped_unmatched": _percent((unmatched & is_flipped).sum(), n_flipped)}


def evaluate(job) -> dict:
    """The ``label_errors`` evaluation kind: the run's training images, with the flipped
    indices drawn again from its ``flip_labels`` option."""
    from whitebox.data.dataset import load_prepared

    spec = job.state["spec"]
    option = spec["training"].get("flip_labels")
    if not option:
        raise ConfigError(f"evaluation 'label_errors' needs a model trained with flipped labels; "
                          f"set training: flip_labels in experiment '{spec['name']}'")
    train = load_prepared(job.data, spec["classes"]).train
    return label_error_report(job.model, train.images, flip_labels(train.labels, **option)[1])
