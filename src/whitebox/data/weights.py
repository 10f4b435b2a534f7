"""Pretrained weight files (ResNet, BagNet) from the mirror, the torch hub cache or the network.

Files keep their published names, which by torch hub convention carry a sha256 prefix
(``resnet34-b627a593.pth``); every file found or fetched is checked against it.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from pathlib import Path

import torch

from whitebox.data.errors import DataError, one_line
from whitebox.data.files import DownloadError, checksum_mismatch, download_resumable
from whitebox.io import plain_state_dict

HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")  # torch.hub's convention: name-<sha256 prefix>.ext
# The normalisation ImageNet-pretrained backbones expect (ProtoPNet uses it on CUB), in [0, 1] units.
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class WeightsUnavailable(DataError):
    """Pretrained weights are neither in the mirror nor the cache, and cannot be downloaded."""


def hub_cache() -> Path:
    """Where torch hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def fetch_weights(
    url: str,
    file: str,
    mirror: Path | None,
    cache_dir: Path | None = None,
    check_hash: bool = True,
) -> Path:
    """Local path of the pretrained weights ``file``: ``mirror/file``,
    ``mirror/checkpoints/file``, ``cache_dir/file`` (default: the torch hub cache), or
    downloaded from ``url`` into the cache. ``check_hash`` verifies the sha256 prefix in
    the name (skipped for names without one)."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else hub_cache()
    if mirror is not None:
        mirror = Path(mirror).expanduser()
        for path in (mirror / file, mirror / "checkpoints" / file):
            if path.is_file():
                if check_hash:
                    _check_sha256(path, remove=False, fix=f"replace it with a good copy of {file}")
                return path
    cached = cache / file
    if not cached.is_file():
        try:
            download_resumable(url, cached, None, file)
        except DownloadError as error:
            where = f"data_mirror {mirror}" if mirror is not None else "data_mirror (not set)"
            raise WeightsUnavailable(
                f"pretrained weights {file} not found in {where} or {cache} and cannot be "
                f"downloaded ({error.reason}); put {file} in data_mirror or the torch hub cache"
            ) from None
    if check_hash:
        _check_sha256(cached, remove=True, fix=f"rerun to download it again, or put {file} in data_mirror")
    return cached


def _check_sha256(path: Path, *, remove: bool, fix: str) -> None:
    """DataError if ``path``'s sha256 does not start with the hex prefix in its name."""
    match = HASH_IN_NAME.search(path.name)
    if match is None:
        return
    prefix = match.group(1)
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    actual = digest.hexdigest()
    if not actual.startswith(prefix):
        raise checksum_mismatch(path, "sha256", f"{prefix}... as its name says",
                                f"{actual[:len(prefix)]}...", remove=remove, fix=fix)


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file on the CPU: a plain state dict or one under
    ``state_dict`` (as checkpoints hold it), with a ``module.`` prefix (DataParallel) removed."""
    path = Path(path)
    fix = "replace it with a good copy (or delete it to fetch it again)"
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        raise DataError(f"cannot read weights file {path} ({one_line(error, 100)}); {fix}") from None
    payload = plain_state_dict(payload)
    if not isinstance(payload, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in payload.items()
    ):
        raise DataError(f"weights file {path} holds no state dict of tensors; {fix}")
    return payload
