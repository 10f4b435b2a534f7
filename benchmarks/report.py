"""One measured number against its target, and the table / JSON the benchmark run writes."""

from __future__ import annotations

import operator
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

COMPARE = {"<": operator.lt, ">": operator.gt}


@dataclass
class Measurement:
    """A number, its unit, and the target it is held to (``value op limit`` passes)."""

    name: str
    value: float | None
    unit: str
    op: str | None = None
    limit: float | None = None
    note: str = ""
    details: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        """PASS / MISS against the target; INFO for numbers without one; MISS when not measured."""
        if self.op is None:
            return "INFO"
        if self.value is None:
            return "MISS"
        return "PASS" if COMPARE[self.op](self.value, self.limit) else "MISS"

    @property
    def target(self) -> str:
        return "" if self.op is None else f"{self.op} {self.limit:g} {self.unit}".rstrip()


def _format_value(m: Measurement) -> str:
    if m.value is None:
        return "-"
    digits = 2 if abs(m.value) < 10 else 1 if abs(m.value) < 1000 else 0
    return f"{m.value:,.{digits}f} {m.unit}".rstrip()


def format_table(measurements: list[Measurement]) -> str:
    """Fixed-width table: measurement, value, target, status, note."""
    rows = [("measurement", "value", "target", "status", "note")]
    rows += [(m.name, _format_value(m), m.target, m.status, m.note) for m in measurements]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0]), row[1].rjust(widths[1]), row[2].ljust(widths[2]),
                 row[3].ljust(widths[3]), row[4]]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def write_json(measurements: list[Measurement], path: Path, settings: dict) -> None:
    """Write the run's measurements, settings and machine description to ``path`` (atomically)."""
    import torch

    from whitebox.io import save_json
    from whitebox.provenance import git_commit

    payload = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(),
                    "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "git_commit": git_commit(Path(__file__).resolve().parent),
        "measurements": [dict(asdict(m), status=m.status, target=m.target) for m in measurements],
    }
    save_json(payload, path)
