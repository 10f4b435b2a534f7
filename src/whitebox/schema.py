"""The JSON Schema of config.yaml (workflow/schemas/config.schema.yaml): one copy of every key,
its default and its bounds, read by the workflow's validation and by the commands.

Pure Python (no torch).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import jsonschema
import yaml

from whitebox.errors import ConfigError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


@functools.cache
def _load(path: Path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The schema as a dict (a fresh copy: callers may extend it)."""
    return copy.deepcopy(_load(Path(path)))


def validator_with_defaults(schema: dict) -> jsonschema.protocols.Validator:
    """A 2020-12 validator that also fills in ``default`` values of missing properties."""
    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def fill_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": fill_defaults})(schema)


def describe(error: jsonschema.ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """``<key path>: <message>``; ``prefix`` leads the path (e.g. one experiment entry)."""
    where = "/".join(str(p) for p in (*prefix, *error.absolute_path)) or "<top level>"
    if error.validator == "oneOf" and error.context:
        # Report the branch that got furthest instead of "is not valid under any".
        best = jsonschema.exceptions.best_match(error.context)
        return f"{where}: {best.message}"
    if error.validator == "pattern" and "valid_values" in error.schema:
        # A regular expression tells users little: say what the schema documents instead.
        return f"{where}: {error.instance!r} is not one of {error.schema['valid_values']}"
    return f"{where}: {error.message}"


def block(*pointer: str, path: Path = SCHEMA_PATH) -> dict:
    """The subschema at ``pointer`` (keys from the root, e.g. ``"$defs", "training"``), with the
    root's ``$defs`` so that references inside it resolve."""
    schema = load_schema(path)
    sub = schema
    for key in pointer:
        sub = sub[key]
    return {**sub, "$defs": schema.get("$defs", {})}


def settings(pointer: tuple[str, ...], given: dict, label: str, prefix: tuple[str, ...] = ()) -> dict:
    """``given`` checked against the subschema at ``pointer``, its defaults filled in for the rest.

    Raises ConfigError naming every bad setting on one line, led by ``label``.
    """
    filled = copy.deepcopy(given)
    errors = sorted(validator_with_defaults(block(*pointer)).iter_errors(filled),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"{label}: " + "; ".join(describe(e, prefix) for e in errors))
    return filled


def defaults(*pointer: str) -> dict:
    """Every default of the object at ``pointer`` (nested objects filled too)."""
    return settings(pointer, {}, "schema defaults")
