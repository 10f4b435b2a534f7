"""What a figure kind's renderer gets: the files it reads, its options, where it writes.

Renderers (``render(job)``, declared in ``whitebox.figures.kinds``) load what they need
through the job, so a kind that reads no model never loads one.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from whitebox.errors import ConfigError


@dataclass
class FigureJob:
    """One figure: ``model`` (the experiment's first-seed model.pt), ``data`` (prepared
    tensors), ``compare`` (a second model.pt), ``evaluation`` (an evaluation JSON), the
    kind's ``options`` (defaults filled), the ``title`` it carries and the ``out`` PNG."""

    out: Path
    options: dict
    model: Path | None = None
    data: Path | None = None
    compare: Path | None = None
    evaluation: Path | None = None
    title: str = ""
    compare_title: str = ""

    @functools.cached_property
    def trained(self):
        """(model, saved state) of ``model``."""
        from whitebox.models.trained import load_trained

        return load_trained(self._given("model", self.model))

    @functools.cached_property
    def compared(self):
        """(model, saved state) of ``compare``, or None."""
        from whitebox.models.trained import load_trained

        return None if self.compare is None else load_trained(self.compare)

    def prepared(self):
        """The prepared dataset of ``data``, restricted to the model's classes."""
        from whitebox.data.dataset import load_prepared

        return load_prepared(self._given("data", self.data), self.trained[1]["spec"]["classes"])

    def evaluation_result(self) -> dict:
        path = self._given("evaluation", self.evaluation)
        try:
            return json.loads(path.read_text())["result"]
        except FileNotFoundError:
            raise ConfigError(f"no evaluation at {path}; run it first (snakemake {path})") from None

    def titled(self, fallback: str = "") -> str:
        """The experiment's title, else the model's experiment name."""
        return self.title or fallback or self.trained[1]["spec"]["name"]

    def _given(self, what: str, path: Path | None) -> Path:
        if path is None:
            raise ConfigError(f"this figure needs --{what}")
        return Path(path)
