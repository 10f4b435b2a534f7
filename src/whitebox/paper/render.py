"""Render the paper templates into ``paper/generated/``, one ``.tex`` per ``.tex.j2``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2

from whitebox.paper.latex import latex_environment

TEMPLATE_SUFFIX = ".tex.j2"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and a rename."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _render(env: jinja2.Environment, path: Path, context: dict[str, Any]) -> str:
    """Render one template; a missing name is reported with the template that wanted it."""
    try:
        return env.get_template(path.name).render(context)
    except jinja2.UndefinedError as error:
        raise jinja2.UndefinedError(
            f"template {path}: {error.message}; the results lack this value"
        ) from error


def render_paper(template_dir: Path, out_dir: Path, context: dict[str, Any]) -> list[Path]:
    """Render every ``*.tex.j2`` in ``template_dir`` to ``out_dir/<name>.tex``.

    All templates are rendered before any file is written, so a template that fails
    (e.g. refers to a missing number) leaves the previous outputs untouched.
    Returns the written paths in template-name order.
    """
    template_dir, out_dir = Path(template_dir), Path(out_dir)
    templates = sorted(template_dir.glob(f"*{TEMPLATE_SUFFIX}"))
    if not templates:
        raise FileNotFoundError(f"no *{TEMPLATE_SUFFIX} templates in {template_dir}")
    env = latex_environment(template_dir)
    rendered = {
        out_dir / (path.name.removesuffix(TEMPLATE_SUFFIX) + ".tex"): _render(env, path, context)
        for path in templates
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, text in rendered.items():
        write_atomically(path, text)
    return list(rendered)
