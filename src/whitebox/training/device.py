"""Device choice: CUDA when present, else CPU; always recorded in the results.

On a machine with several visible GPUs (``snakemake --resources gpu=N`` runs N training jobs
at once), ``auto`` gives each job a GPU of its own: it takes an exclusive lock file per GPU
and holds it until the process ends. A scheduler that already hands each job its own GPU
(SLURM sets CUDA_VISIBLE_DEVICES) leaves one visible device, and then no lock is taken.
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import torch

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
_HELD: list[IO] = []  # lock files of claimed GPUs, open for the life of the process


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` -> a free CUDA device if there is one, else cpu; ``cuda``/``cuda:N`` without
    that GPU is an error."""
    if not DEVICE_PATTERN.match(requested):
        raise RuntimeError(f"device: unknown device '{requested}'; use auto, cpu, cuda or cuda:N")
    if requested == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested == "auto":
        return torch.device("cuda", claim_gpu(count)) if count else torch.device("cpu")
    index = int(requested.split(":")[1]) if ":" in requested else 0
    if index >= count:
        raise RuntimeError(f"device: {requested} requested but {count} CUDA GPU(s) are visible; "
                           "use device: auto")
    return torch.device("cuda", index)


def visible_gpu_ids(count: int) -> list[str]:
    """Names of the visible GPUs that are the same in every process on this machine: the
    entries of CUDA_VISIBLE_DEVICES when it is set, else the indices."""
    listed = [part.strip() for part in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")
              if part.strip()]
    return listed[:count] if len(listed) >= count else [str(i) for i in range(count)]


def gpu_lock_dir() -> Path:
    """Where the per-GPU lock files live (WHITEBOX_GPU_LOCKS, else the temp directory)."""
    default = Path(tempfile.gettempdir()) / f"whitebox-gpu-locks-{os.getuid()}"
    return Path(os.environ.get("WHITEBOX_GPU_LOCKS", default))


def claim_gpu(count: int, lock_dir: Path | None = None, poll_s: float = 5.0) -> int:
    """Index of a GPU no other whitebox process on this machine holds, locked for this process.

    One visible GPU (or a SLURM job, whose GPUs are its own) is used without a lock. When every
    GPU is held (more GPU jobs than GPUs), waits for one to be released.
    """
    if count <= 1 or "SLURM_JOB_ID" in os.environ:
        return 0
    lock_dir = lock_dir or gpu_lock_dir()
    lock_dir.mkdir(parents=True, exist_ok=True)
    names = visible_gpu_ids(count)
    announced = False
    while True:
        for index, name in enumerate(names):
            lock = lock_dir / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.lock"
            handle = open(lock, "a")  # noqa: SIM115 (held open while the job runs)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _HELD.append(handle)
            return index
        if not announced:
            print(f"all {count} GPUs are held by other whitebox jobs; waiting for one "
                  f"(locks in {lock_dir})", file=sys.stderr, flush=True)
            announced = True
        time.sleep(poll_s)


def device_name(device: torch.device) -> str:
    """Human-readable name of the device (GPU model or CPU architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.machine()} CPU ({torch.get_num_threads()} threads)"
