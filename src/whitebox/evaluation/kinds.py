"""Every extra evaluation kind of a trained model, declared once: what computes it and what
it reads. ``<run dir>/<kind>.json`` holds its result.

The config schema's list of evaluations, the workflow's wildcard constraint and inputs, and
the choices of ``whitebox evaluate --kind`` come from this table. A kind's function takes an
``EvaluationJob`` (``whitebox.evaluation.job``) and returns the JSON-able result.

Pure Python (no torch): the Snakefile reads it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EvaluationKind:
    """``run`` is ``module:function``; ``inh_only``: the kind needs an INH model;
    ``extra_data``: base datasets whose prepared tensors it also reads."""

    run: str
    description: str
    inh_only: bool = True
    extra_data: tuple[str, ...] = ()


EVALUATION_KINDS: dict[str, EvaluationKind] = {
    "slot_update": EvaluationKind(
        run="whitebox.evaluation.slot_update:evaluate",
        description="continual learning: cover the unmatched half of the test set with new slots"),
    "ood": EvaluationKind(
        run="whitebox.evaluation.ood:evaluate",
        description="unmatched inputs: Gaussian and uniform noise, greyscale CIFAR-10 crops",
        extra_data=("cifar10",)),
    "attacks": EvaluationKind(
        run="whitebox.evaluation.attacks:evaluate",
        description="accuracy under L-infinity PGD (and the share an INH model flags)",
        inh_only=False),
    "class_incremental": EvaluationKind(
        run="whitebox.evaluation.ood:evaluate_class_incremental",
        description="classes left out of training: are they left unmatched?"),
    "label_errors": EvaluationKind(
        run="whitebox.evaluation.label_errors:evaluate",
        description="labels flipped in training (flip_labels): are they what only singleton "
                    "slots match?"),
    "view_usage": EvaluationKind(
        run="whitebox.evaluation.view_usage:evaluate",
        description="layers with a maximum over views: the share of maxima each view wins",
        inh_only=False),
    "unit_activity": EvaluationKind(
        run="whitebox.evaluation.unit_activity:evaluate",
        description="dead ReLU-like units per layer; correlations of the representation units",
        inh_only=False),
    "hidden_noise_stability": EvaluationKind(
        run="whitebox.evaluation.hidden_noise_stability:evaluate",
        description="per convolution, how stable its units' input gradients are on noise",
        inh_only=False),
    "train_fit": EvaluationKind(
        run="whitebox.evaluation.train_fit:evaluate",
        description="accuracy on the training and the test images, both in eval mode, and their gap",
        inh_only=False),
}
