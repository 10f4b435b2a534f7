"""Epoch checkpoints: everything needed to resume after the last finished epoch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from whitebox.io import save_torch


def save_checkpoint(path: Path, run_id: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                    records: list[dict], elapsed: float) -> None:
    """Write the checkpoint atomically; ``run_id`` ties it to one experiment spec and seed."""
    save_torch({"run_id": run_id, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "records": records,
                "elapsed": elapsed}, path)


def load_checkpoint(path: Path, run_id: str) -> dict | None:
    """The checkpoint at ``path`` if it belongs to ``run_id``, else None (start afresh)."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("run_id") == run_id else None
