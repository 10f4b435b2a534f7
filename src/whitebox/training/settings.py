"""The ``training:`` block of one experiment as a typed object; every default is the schema's
(workflow/schemas/config.schema.yaml, ``$defs/training``), the one copy of them."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from whitebox.schema import defaults, settings

TRAINING = ("$defs", "training")
_DEFAULTS = defaults(*TRAINING)


def _schema_default(key: str):
    return field(default_factory=lambda: copy.deepcopy(_DEFAULTS[key]))


@dataclass
class TrainSettings:
    """See the schema for each field's meaning and bounds."""

    epochs: int = _schema_default("epochs")
    batch_size: int = _schema_default("batch_size")
    optimizer: dict = _schema_default("optimizer")
    schedule: str = _schema_default("schedule")
    augment: list[str] = _schema_default("augment")
    label_smoothing: float = _schema_default("label_smoothing")
    eval_batch_size: int = _schema_default("eval_batch_size")
    tau: dict | None = _schema_default("tau")  # {"start", "end"}: Gumbel temperature schedule
    invariance: dict | None = _schema_default("invariance")  # {"weight", "augmentations"}
    # Keys the schema gives no default (an unset key stays out of the run spec, so adding them
    # retrained nothing); the defaults here mean "off".
    shuffle_labels: bool = False  # a random-label control
    adversarial: dict | None = None  # {"norm", "eps", "steps"[, "step_size"]}: PGD training
    flip_labels: dict | None = None  # {"share", "seed"}: known label errors

    @classmethod
    def from_config(cls, training: dict, prefix: tuple[str, ...] = ()) -> TrainSettings:
        """``training`` (a config entry's block) checked against the schema, defaults filled;
        one-line ConfigError naming the key otherwise (``prefix`` leads its path)."""
        return cls(**settings(TRAINING, training, "config error", prefix))
