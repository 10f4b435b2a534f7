"""``whitebox compare KIND``: figures across experiments, one subcommand per entry of
:data:`COMPARISONS`. The workflow passes the options of config.yaml's block of the kind; by
hand they default to the schema's."""

from __future__ import annotations

import argparse
import importlib
import json
from pathlib import Path
from typing import NamedTuple

from whitebox.errors import ConfigError
from whitebox.schema import block, settings


class Comparison(NamedTuple):
    """A comparison figure: ``render`` (``module:function``, loaded by name so that each
    kind's code digest covers only its own renderer), config.yaml's ``block`` of options."""

    render: str
    block: str
    help: str


COMPARISONS: dict[str, Comparison] = {
    "accuracy-quality": Comparison(
        "whitebox.figures.quality_plot:render_accuracy_quality", "accuracy_quality",
        help="test accuracy against alignment and noise stability, every experiment a point"),
    "gradients": Comparison(
        "whitebox.figures.gradient_comparison:render_gradient_comparison", "gradient_comparison",
        help="several stages' class-logit gradients on the same test and noise images"),
}
LISTS = ("stages",)  # options of a block that the workflow resolves into paths


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    for name, comparison in COMPARISONS.items():
        sub = kinds.add_parser(name, help=comparison.help, description=comparison.help)
        if name == "accuracy-quality":
            sub.add_argument("--metrics", nargs="+", required=True,
                             help="metrics.json of every run (gradient_metrics.json next to it)")
            sub.add_argument("--presentation", default="{}",
                             help="JSON: each experiment's family and finding, as in "
                                  "results/summary/presentation.json")
            sub.add_argument("--claims", default="{}", help="config.yaml's claims block as JSON")
        else:
            sub.add_argument("--data", required=True, help="prepared tensors of the stages' dataset")
            sub.add_argument("--stage", nargs=2, action="append", required=True,
                             metavar=("TITLE", "MODEL"), help="a stage's title and first-seed model.pt")
        for key, options in _options(comparison).items():
            sub.add_argument(f"--{key.replace('_', '-')}", dest=key,
                             type=float if options.get("type") == "number" else int,
                             help=f"{options.get('description', '')} (default {options.get('default')})")
        sub.add_argument("--out", required=True)
        sub.set_defaults(run=run)


def _options(comparison: Comparison) -> dict:
    """The schema of the kind's numeric options (its config block without the lists)."""
    properties = block("properties", comparison.block)["properties"]
    return {key: options for key, options in properties.items() if key not in LISTS}


def _json_option(name: str, text: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"--{name} is not valid JSON: {error}") from None


def run(args: argparse.Namespace) -> None:
    comparison = COMPARISONS[args.kind]
    given = {key: getattr(args, key) for key in _options(comparison)
             if getattr(args, key) is not None}
    options = {key: value for key, value in
               settings(("properties", comparison.block), given, f"{args.kind} options").items()
               if key not in LISTS}
    if args.kind == "accuracy-quality":
        inputs = {"metrics_paths": [Path(p) for p in args.metrics],
                  "presentation": _json_option("presentation", args.presentation),
                  "claims": _json_option("claims", args.claims)}
    else:
        inputs = {"stages": [(title, Path(model)) for title, model in args.stage],
                  "data": Path(args.data)}
    module, _, function = comparison.render.partition(":")
    getattr(importlib.import_module(module), function)(**inputs, **options, out=Path(args.out))
