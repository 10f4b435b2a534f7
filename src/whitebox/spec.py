"""A training run's identity: exactly what changes the result of training one experiment.

Titles, families, findings, figures, claims, evaluations and cluster resources are not part
of it (they are the paper's presentation, see ``whitebox.config.presentation``), so editing
them never retrains. With the seed and the digest of the code that trains
(``whitebox.code_identity``), a ``RunSpec`` decides a run's result. Pure Python (no torch).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields

import jsonschema

from whitebox.code_identity import registered_models
from whitebox.errors import ConfigError
from whitebox.schema import block, describe


@dataclass(frozen=True)
class RunSpec:
    """Dataset (and its source), model, model_args, training and pretrained weights of one
    experiment; ``name`` only names it (in messages and result files)."""

    name: str
    dataset: str
    base_dataset: str
    source: dict
    classes: list[str] | None
    model: str
    model_args: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    pretrained: dict | None = None  # {name, url, file, fallback, check_hash} of pretrained_weights

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        """Parse a spec (as ``to_json`` writes it) and check it with ``check_spec``, so a
        hand-written ``--spec`` fails with one line naming the key, before anything is written."""
        try:
            fields_ = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"the run spec is not valid JSON: {error}") from None
        if not isinstance(fields_, dict):
            raise ConfigError("the run spec must be a JSON object")
        check_spec(fields_)
        return cls(**fields_)

    def config_hash(self) -> str:
        """12 hex digits of everything but the name: equal specs under two names share it."""
        relevant = {k: v for k, v in asdict(self).items() if k != "name"}
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def check_model(name: str, model: object) -> None:
    """``model`` must be a registered model (whitebox.models.registry); one line otherwise."""
    valid = registered_models()
    if model not in valid:
        raise ConfigError(f"config error at experiments/{name}/model: unknown model "
                          f"{model!r}; valid: {', '.join(sorted(valid))}")


def check_spec(spec: dict) -> None:
    """Check a spec's fields, and its dataset, model, model_args and training against the
    schema's experiment entry (the keys a spec shares with config.yaml).

    Raises ConfigError with one line naming the key, e.g.
    ``config error at experiments/conv_simple/training/epochs: -3 is less than the minimum of 1``.
    """
    known = {f.name for f in fields(RunSpec)}
    required = {f.name for f in fields(RunSpec)
                if f.default is MISSING and f.default_factory is MISSING}
    problems = []
    if unknown := sorted(set(spec) - known):
        problems.append(f"unknown field(s) {', '.join(unknown)}")
    if missing := sorted(required - set(spec)):
        problems.append(f"missing field(s) {', '.join(missing)}")
    if problems:
        raise ConfigError(f"run spec: {'; '.join(problems)} (write it with RunSpec.to_json)")
    name = spec["name"] if isinstance(spec["name"], str) else "?"
    shared = {key: spec[key] for key in ("dataset", "model", "model_args", "training") if key in spec}
    errors = sorted(jsonschema.Draft202012Validator(block("$defs", "experiment")).iter_errors(shared),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"config error at {describe(errors[0], ('experiments', name))}")
    check_model(name, spec["model"])
