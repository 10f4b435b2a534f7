"""What an evaluation kind reads: one trained model, its dataset, and the extra data it needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from whitebox.errors import ConfigError


@dataclass
class EvaluationJob:
    """The model of one run (``model``, with ``state`` as saved), its prepared data and seed,
    and ``extra_data``: {base dataset: prepared tensors path} of the kind's ``extra_data``."""

    model: object
    state: dict
    data: Path
    seed: int
    extra_data: dict[str, Path] = field(default_factory=dict)

    def test_split(self):
        """The model's classes of the test split (uint8 images, labels)."""
        from whitebox.data.dataset import load_prepared

        return load_prepared(self.data, self.state["spec"]["classes"]).test

    def extra(self, dataset: str) -> Path:
        if dataset not in self.extra_data:
            raise ConfigError(f"this evaluation also needs the prepared {dataset} tensors; "
                              f"pass --extra-data {dataset}=data/{dataset}/tensors.pt")
        return self.extra_data[dataset]
