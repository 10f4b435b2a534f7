"""A robustness report under L-infinity PGD (``whitebox.evaluation.pgd``), with optional flagging.

The log claims INH is robust because attacked inputs end up unmatched. The attack here
is the standard *non-adaptive* one: it maximises the cross-entropy of the logits and
ignores the flag, so "flagged" numbers say how often that attack lands in unmatched
territory, not how an attacker aware of the flag would fare.

Images are float in [0, 1]; eps and step sizes are in those units (0.3 = 76.5 / 255).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from whitebox.evaluation.accuracy import eval_argmax
from whitebox.evaluation.ood import _percent, inh_features, inh_layer
from whitebox.evaluation.pgd import pgd_linf

FlagFn = Callable[[torch.Tensor], torch.Tensor]


def inh_flags(model: nn.Module) -> FlagFn:
    """A ``flag_fn`` for INH classifiers: float images -> bool "no slot matches" (best margin < 0)."""
    layer = inh_layer(model)

    @torch.no_grad()
    def flag(images: torch.Tensor) -> torch.Tensor:
        was_training = model.training
        model.eval()
        try:
            return layer.best_margin(inh_features(model, images)) < 0
        finally:
            model.train(was_training)

    return flag


def _scores(correct: torch.Tensor, flagged: torch.Tensor | None) -> dict:
    """Accuracy and, with flags, the abstention view (see ``robustness_report``)."""
    n = int(correct.numel())
    scores = {"accuracy": _percent(correct.sum(), n)}
    if flagged is not None:
        kept = ~flagged
        n_kept = int(kept.sum())
        scores.update({
            "flagged": _percent(flagged.sum(), n),
            "accuracy_with_abstention": _percent((correct | flagged).sum(), n),
            "wrong_unflagged": _percent((~correct & kept).sum(), n),
            "accuracy_unflagged": _percent((correct & kept).sum(), n_kept),
        })
    return scores


def robustness_report(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                      eps_list: tuple[float, ...] = (0.1, 0.2, 0.3), steps: int = 40,
                      flag_fn: FlagFn | None = None, batch_size: int = 500, seed: int = 0) -> dict:
    """Clean and PGD accuracy per eps; with ``flag_fn``, how often inputs are flagged.

    ``images`` uint8 ``(N, C, H, W)`` on the model's device, ``labels`` int64. Per
    setting (``clean`` and each entry of ``attacks``), in percent of all N inputs:

    * ``accuracy``: classified correctly (flags ignored).

    With ``flag_fn`` (float images -> bool "flagged", e.g. ``inh_flags(model)``), a
    flagged input counts as an abstention:

    * ``flagged``: share of inputs flagged (on clean data: the false-alarm rate);
    * ``accuracy_with_abstention``: correct *or* flagged, i.e. the attack failed to get
      a wrong answer accepted (= 100 - ``wrong_unflagged``);
    * ``wrong_unflagged``: misclassified and not flagged (the attack's success rate);
    * ``accuracy_unflagged``: accuracy among the inputs not flagged (percent of those;
      None when all are flagged).

    Batches of ``batch_size`` are attacked with seeds derived from ``seed``, so the
    report is deterministic for a given ``seed`` and ``batch_size``.
    """
    if labels.shape != images.shape[:1] or labels.dtype != torch.long:
        raise ValueError(f"labels must be int64 of shape ({images.shape[0]},), got "
                         f"{labels.dtype} {tuple(labels.shape)}")
    if images.shape[0] == 0:
        raise ValueError("robustness_report needs at least one image")
    clean_correct, clean_flags = [], []
    attacked_correct: dict[float, list] = {eps: [] for eps in eps_list}
    attacked_flags: dict[float, list] = {eps: [] for eps in eps_list}
    for first in range(0, images.shape[0], batch_size):
        clean = images[first:first + batch_size].float().div_(255)
        target = labels[first:first + batch_size]
        clean_correct.append(eval_argmax(model, clean) == target)
        if flag_fn is not None:
            clean_flags.append(flag_fn(clean).bool())
        for eps in eps_list:
            # a seed per batch, so the random starts differ between batches
            adversarial = pgd_linf(model, clean, target, eps, steps=steps,
                                   seed=seed * 1_000_003 + first, batch_size=batch_size)
            attacked_correct[eps].append(eval_argmax(model, adversarial) == target)
            if flag_fn is not None:
                attacked_flags[eps].append(flag_fn(adversarial).bool())

    def joined(parts: list) -> torch.Tensor | None:
        return torch.cat(parts) if parts else None

    return {
        "n": int(labels.numel()),
        "steps": steps,
        "step_size": "2.5 * eps / steps",
        "seed": seed,
        "flagging": flag_fn is not None,
        "clean": _scores(torch.cat(clean_correct), joined(clean_flags)),
        "attacks": [{"eps": float(eps), **_scores(torch.cat(attacked_correct[eps]),
                                                  joined(attacked_flags[eps]))}
                    for eps in eps_list],
    }


ATTACKED_IMAGES = 2000  # PGD on the first 2000 test images: 40 steps x 3 eps stay minutes on a CPU


def evaluate(job) -> dict:
    """The ``attacks`` evaluation kind: PGD on the first ATTACKED_IMAGES test images; an INH
    model's unmatched inputs count as flagged."""
    from whitebox.layers.base import growing_layers

    test = job.test_split()
    images, labels = test.images[:ATTACKED_IMAGES], test.labels[:ATTACKED_IMAGES]
    is_inh = bool(growing_layers(job.model))
    result = robustness_report(job.model, images, labels, seed=job.seed,
                               flag_fn=inh_flags(job.model) if is_inh else None)
    return {**result, "n_images": len(images)}
