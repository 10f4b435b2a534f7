"""Device choice: CUDA when present, else CPU; always recorded in the results."""

from __future__ import annotations

import platform

import torch


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` -> cuda if available else cpu; ``cuda`` without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda requested but no CUDA GPU is visible; use device: auto")
    return torch.device(requested)


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model or CPU architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU ({torch.get_num_threads()} threads)"
