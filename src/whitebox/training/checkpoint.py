"""Training checkpoints: everything needed to resume after the last finished epoch, or,
when a stop signal came mid-epoch, after the last finished step.

An epoch checkpoint holds ``run_id``, ``model``, ``optimizer``, ``records`` (finished
epochs) and ``elapsed`` (their training seconds). A mid-epoch checkpoint adds ``position``
(see ``save_checkpoint``); a checkpoint without it (or with ``position=None``) is an
epoch checkpoint, so files written before mid-epoch checkpoints existed still load.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from whitebox.io import save_torch


def save_checkpoint(path: Path, run_id: str, model: nn.Module, optimizer: torch.optim.Optimizer,
                    records: list[dict], elapsed: float, position: dict | None = None) -> None:
    """Write the checkpoint atomically; ``run_id`` ties it to one experiment spec and seed.

    ``position`` (mid-epoch only): ``epoch`` (0-based, = len(records)), ``step`` (steps of it
    done), the partial sums ``loss_sum``, ``penalty_sum``, ``correct`` (CPU tensors), ``lr``,
    ``generator`` (the epoch generator's state), ``rng`` (``rng_state()``) and
    ``epoch_time_s`` (seconds spent in the epoch so far).
    """
    save_torch({"run_id": run_id, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "records": records,
                "elapsed": elapsed, "position": position}, path)


def load_checkpoint(path: Path, run_id: str) -> dict | None:
    """The checkpoint at ``path`` if it belongs to ``run_id``, else None (start afresh)."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state if state.get("run_id") == run_id else None


def rng_state(device: torch.device) -> dict:
    """torch's global generators (CPU, and the device's on CUDA): Gumbel layers, dropout and
    colour augmentation draw from them."""
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None}


def restore_rng_state(state: dict, device: torch.device) -> None:
    """Undo ``rng_state``: the global generators continue exactly where they were saved."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
