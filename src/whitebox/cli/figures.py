"""``whitebox figure KIND``: one figure of a trained model, one subcommand per kind of
``whitebox.figures.kinds`` with one flag per option of the kind (or all of them as
``--options JSON``, as the workflow passes them)."""

from __future__ import annotations

import argparse
import importlib
import json
import re
from pathlib import Path

from whitebox.errors import ConfigError
from whitebox.figures.kinds import (
    COMPARE,
    DATA,
    FIGURE_KINDS,
    SLOT_UPDATE,
    options_problem,
    options_schema,
)

TYPES = {"integer": int, "number": float, "string": str}


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, kind in FIGURE_KINDS.items():
        first_sentence = re.split(r"(?<=\.)\s+(?=[A-Z])", kind.caption)[0]
        sub = kinds.add_parser(name, help=first_sentence, description=kind.caption)
        if kind.needs_model():
            sub.add_argument("--model", required=True, help="the experiment's model.pt")
            sub.add_argument("--title", default="", help="the experiment's title (default: its name)")
        if DATA in kind.inputs:
            sub.add_argument("--data", required=True, help="prepared tensors of the model's dataset")
        if COMPARE in kind.inputs:
            sub.add_argument("--compare-model", default=None, help="a second model, drawn below")
            sub.add_argument("--compare-title", default="", help="its experiment's title")
        if SLOT_UPDATE in kind.inputs:
            sub.add_argument("--evaluation", required=True, help="the run's slot_update.json")
        sub.add_argument("--options", default="{}", help="the kind's options as JSON")
        for option, schema in kind.options.items():
            if option == "compare":
                continue  # an experiment name: the command takes --compare-model instead
            flag = f"--{option.replace('_', '-')}"
            if schema.get("type") == "array":
                item = TYPES.get(schema.get("items", {}).get("type"), str)  # enums: words
                sub.add_argument(flag, dest=option, type=item, nargs="+", help=schema.get("description"))
            elif schema.get("type") in TYPES:
                sub.add_argument(flag, dest=option, type=TYPES[schema["type"]],
                                 help=f"{schema.get('description', '')} (default {schema.get('default')})")
            else:  # enums, objects: JSON (a plain word for an enum)
                sub.add_argument(flag, dest=option, type=_json_or_word, help=schema.get("description"))
        sub.add_argument("--out", required=True)
        sub.set_defaults(run=run)


def _json_or_word(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def figure_options(kind: str, given: dict) -> dict:
    """``given`` checked against the kind's options schema, defaults filled (one-line errors)."""
    from whitebox.schema import describe, validator_with_defaults

    options = {key: value for key, value in given.items() if key != "file"}
    schema = options_schema(kind)
    errors = sorted(validator_with_defaults(schema).iter_errors(options),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"{kind} figure options: " + "; ".join(describe(e) for e in errors))
    if problem := options_problem(kind, options):
        raise ConfigError(f"{kind} figure options: {problem}")
    return options


def run(args: argparse.Namespace) -> None:
    from whitebox.figures.job import FigureJob

    kind = FIGURE_KINDS[args.kind]
    try:
        given = json.loads(args.options)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--options is not valid JSON: {error}") from None
    given.pop("compare", None)  # resolved by the workflow into --compare-model
    given.update({option: getattr(args, option) for option in kind.options
                  if getattr(args, option, None) is not None})
    options = figure_options(args.kind, given)
    paths = {name: Path(getattr(args, name)) if getattr(args, name, None) else None
             for name in ("model", "data", "compare_model", "evaluation")}
    job = FigureJob(out=Path(args.out), options=options, model=paths["model"], data=paths["data"],
                    compare=paths["compare_model"], evaluation=paths["evaluation"],
                    title=getattr(args, "title", ""), compare_title=getattr(args, "compare_title", ""))
    module, _, function = kind.render.partition(":")
    getattr(importlib.import_module(module), function)(job)
