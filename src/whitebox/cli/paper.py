"""``whitebox paper`` (the templates filled from result files) and ``whitebox summary`` (the
experiments and claims tables as CSV)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from whitebox.errors import ConfigError


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metrics", nargs="+", required=True)
    parser.add_argument("--claims", default=None,
                        help="config.yaml's claims block as JSON (items, margins) for the claims table")
    parser.add_argument("--presentation", default=None,
                        help="JSON file: what config.yaml says about each experiment beyond its "
                             "run (title, family, finding, reported numbers, figure options), as "
                             "the workflow writes it to results/summary/presentation.json")
    if command == "summary":
        parser.add_argument("--out-experiments", required=True, help="CSV: accuracy and gradient metrics")
        parser.add_argument("--out-claims", required=True, help="CSV: claims with evidence and verdicts")
        parser.set_defaults(run=run_summary)
        return
    parser.add_argument("--figure", action="append", default=[], help="EXPERIMENT:KIND=PATH")
    parser.add_argument("--comparison-figure", action="append", default=[],
                        help="accuracy_quality=PATH or gradient_comparison:DATASET=PATH")
    parser.add_argument("--templates", default="paper/templates")
    parser.add_argument("--out", default="paper/generated")
    parser.add_argument("--paper-dir", default="paper", help="figure paths are made relative to it")
    parser.set_defaults(run=run_paper)


def _json_option(name: str, text: str | None) -> dict | None:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as error:
        raise ConfigError(f"--{name} is not valid JSON: {error}") from None


def _presentation(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no presentation file at {path}; write it with "
                          f"snakemake {path}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None


def _context(args: argparse.Namespace, figures: dict, paper_dir: Path,
             comparison: dict[str, Path] | None = None) -> dict:
    from whitebox.paper.context import build_context

    return build_context([Path(p) for p in args.metrics], figures, paper_dir,
                         claims=_json_option("claims", args.claims),
                         presentation=_presentation(args.presentation),
                         comparison_figures=comparison)


def _comparison_figures(items: list[str]) -> dict[str, Path]:
    figures = {}
    for item in items:
        name, _, path = item.partition("=")
        if not (name and path):
            raise ConfigError(f"--comparison-figure expects NAME=PATH, got '{item}'")
        figures[name] = Path(path)
    return figures


def run_paper(args: argparse.Namespace) -> None:
    from whitebox.paper.render import render_paper

    figures: dict[str, dict[str, Path]] = {}
    for item in args.figure:
        key, _, path = item.partition("=")
        experiment, _, kind = key.partition(":")
        if not (experiment and kind and path):
            raise ConfigError(f"--figure expects EXPERIMENT:KIND=PATH, got '{item}'")
        figures.setdefault(experiment, {})[kind] = Path(path)
    render_paper(Path(args.templates), Path(args.out),
                 _context(args, figures, Path(args.paper_dir),
                          _comparison_figures(args.comparison_figure)))


def run_summary(args: argparse.Namespace) -> None:
    from whitebox.paper.summary import claim_rows, experiment_rows, write_csv

    context = _context(args, {}, Path(args.out_experiments).parent)
    write_csv(experiment_rows(context), Path(args.out_experiments))
    write_csv(claim_rows(context), Path(args.out_claims))
