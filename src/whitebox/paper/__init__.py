"""The paper: a LaTeX-safe jinja2 environment, the template context built from result
files, and rendering into ``paper/generated/``. No torch needed."""

from whitebox.paper.context import build_context, load_metrics
from whitebox.paper.errors import PaperInputError
from whitebox.paper.evaluations import aggregate
from whitebox.paper.latex import format_pct, latex_environment, latex_escape
from whitebox.paper.render import render_paper

__all__ = [
    "PaperInputError",
    "aggregate",
    "build_context",
    "format_pct",
    "latex_environment",
    "latex_escape",
    "load_metrics",
    "render_paper",
]
