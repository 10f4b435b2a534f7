"""A jinja2 environment for LaTeX templates, and the filters the paper templates use.

The delimiters are LaTeX-shaped (``\\VAR{x}``, ``\\BLOCK{for ...}``, ``\\#{comment}``) so that
braces in the templates stay LaTeX's, and undefined names fail loudly: a template that
refers to a number the results do not hold must break the build, not print nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import jinja2

# Order matters only for the backslash, which must not re-escape the others' output;
# a single pass with a lookup table avoids that problem altogether.
_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}

_DIGIT_WORDS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


def latex_escape(text: object) -> str:
    """``text`` as LaTeX source that prints it literally (escapes ``_ % & # $ { } ~ ^ \\``)."""
    return "".join(_LATEX_SPECIALS.get(char, char) for char in str(text))


def latex_path(text: object) -> str:
    """A file path escaped for LaTeX, with break points after each slash (long paths wrap)."""
    return latex_escape(text).replace("/", "/\\allowbreak{}")


def format_pct(value: float | None, signed: bool = False) -> str:
    """A percentage with one decimal (``94.1``); ``--`` (an en dash) when there is no number.

    ``signed`` puts an explicit ``+`` in front of positive values (for differences).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "--"
    rounded = round(float(value), 1)
    if rounded == 0:
        rounded = 0.0  # no "-0.0"
    return f"{rounded:+.1f}" if signed else f"{rounded:.1f}"


def _fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, never ``-0.0``, thin spaces between thousands."""
    text = f"{round(float(value), digits) + 0.0:,.{digits}f}"
    if text.lstrip("-").strip("0.,") == "":
        text = text.lstrip("-")
    return text.replace(",", "\\,")


def format_stat(value: dict | None, digits: int = 1, count: bool = False) -> str:
    """A mean over seeds as ``$m \\pm s$`` (sample std), or ``m`` alone for one seed.

    ``value`` is a stat from the paper context (``mean``, ``std``, ``n``); None or a
    mean of None gives ``--``. ``count`` prints whole means without decimals (slot and
    example counts: ``998``, but ``514.5`` when seeds disagree) and drops ``\\pm 0`` when
    every seed gives the same count.
    """
    if value is None or value.get("mean") is None:
        return "--"
    mean = float(value["mean"])
    mean_digits = 0 if count and mean.is_integer() else digits
    text = _fixed(mean, mean_digits)
    std = float(value["std"])
    if value.get("n", 1) <= 1 or (count and std == 0):
        return text
    return f"${text} \\pm {_fixed(std, digits)}$"


def format_number(value: float) -> str:
    """A count that may be a mean: ``483`` when whole, else one decimal (``483.5``)."""
    value = round(float(value), 1)
    return _fixed(value, 0 if value.is_integer() else 1)


def format_count(value: int) -> str:
    """An integer with thin spaces between groups of three digits (``247\\,081``)."""
    return f"{int(value):,}".replace(",", "\\,")


def format_seconds(seconds: float) -> str:
    """A wall time in the unit a reader expects: ``20.3~s``, ``12.5~min`` or ``2.1~h``."""
    if seconds < 120:
        return f"{seconds:.1f}~s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f}~min"
    return f"{seconds / 3600:.1f}~h"


def macro_name(name: str) -> str:
    """A LaTeX command name (letters only) for an experiment name: ``conj_disj`` → ``ConjDisj``.

    Digits are spelled out (``cifar2`` → ``CifarTwo``) because TeX command names are letters.
    """
    words = "".join(char if char.isalnum() else " " for char in name).split()
    camel = "".join(word[:1].upper() + word[1:] for word in words)
    spelled = "".join(_DIGIT_WORDS[int(c)] if c.isdigit() else c for c in camel)
    letters = "".join(char for char in spelled if char.isascii() and char.isalpha())
    if not letters:
        raise ValueError(f"experiment name {name!r} gives no letters for a LaTeX macro name")
    return letters


def latex_environment(template_dir: Path) -> jinja2.Environment:
    """A jinja2 environment reading ``template_dir`` with LaTeX-safe delimiters.

    ``\\VAR{...}`` prints, ``\\BLOCK{...}`` is a statement and ``\\#{...}`` a comment (no
    line statements: ``%%`` lines are common LaTeX comments). Undefined names raise
    (StrictUndefined), nothing is auto-escaped; use the ``latex`` filter on free text.
    """
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir)),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(
        latex=latex_escape,
        latex_path=latex_path,
        pct=format_pct,
        count=format_count,
        seconds=format_seconds,
        pm=format_stat,
        num=format_number,
        pmcount=lambda value: format_stat(value, count=True),
    )
    return env
