"""MNIST and CIFAR-10 through torchvision, from a local mirror or the network.

File names, urls and md5 sums are read from the torchvision dataset classes at call
time (tests patch them). Archives are md5-checked here, before torchvision sees them,
so a bad file ends in one clear line. Downloads are resumable: bytes arrive in a
``<file>.part`` that a failed download may leave for the next run to resume, and the
file gets its own name only once its md5 matches (a bad download is deleted). Unpacking
is atomic. A mirror is read in place and never modified.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torchvision
from torchvision.datasets.utils import check_integrity

from whitebox.data.dataset import Dataset, Split
from whitebox.data.errors import DataError, one_line
from whitebox.data.files import (
    REFETCH,
    copy_file,
    download_resumable,
    gunzip,
    unpack_folder,
    verify_md5,
)

TORCHVISION_NAMES = ("mnist", "cifar10")
MNIST_CLASSES = [str(digit) for digit in range(10)]


def load_torchvision(name: str, root: Path, mirror: Path | None = None) -> Dataset:
    """Dataset ``name`` (mnist or cifar10), fetched into ``root`` unless already there."""
    root = Path(root).expanduser()
    mirror = Path(mirror).expanduser() if mirror is not None else None
    if mirror is not None and not mirror.is_dir():
        raise DataError(f"data_mirror {mirror} is not a directory; fix data_mirror in the config")
    if name == "mnist":
        return _load_mnist(root, mirror)
    if name == "cifar10":
        return _load_cifar10(root, mirror)
    raise DataError(
        f"torchvision source knows only {', '.join(TORCHVISION_NAMES)}, not '{name}'; "
        "use source: imagefolder or synthetic"
    )


def _read_error(what: Path, error: BaseException) -> DataError:
    return DataError(
        f"cannot read {what} ({one_line(error, 100)}); its files are truncated or corrupt: "
        "replace or delete them and rerun"
    )


# ---------------------------------------------------------------- MNIST


def _load_mnist(root: Path, mirror: Path | None) -> Dataset:
    cls = torchvision.datasets.MNIST
    # resources hold the .gz names and their md5; torchvision reads the unpacked files.
    resources = [(gz, md5, Path(gz).stem) for gz, md5 in cls.resources]
    plains = [plain for _, _, plain in resources]
    raw = root / "MNIST" / "raw"
    mirror_raw = mirror / "MNIST" / "raw" if mirror is not None else None
    source_root = root
    if not _all_files(raw, plains):
        if mirror_raw is not None and _all_files(mirror_raw, plains):
            source_root = mirror_raw.parent.parent  # unpacked files in the mirror: read in place
        else:
            for gz, md5, plain in resources:
                if not (raw / plain).is_file():
                    _fetch_mnist_file(raw, mirror_raw, gz, md5, plain, cls.mirrors)
    try:
        train = cls(str(source_root), train=True, download=False)
        test = cls(str(source_root), train=False, download=False)
    except Exception as error:  # torchvision raises assorted errors on a bad file
        raise _read_error(source_root / "MNIST" / "raw", error) from None
    return Dataset("mnist", list(MNIST_CLASSES), _mnist_split(train), _mnist_split(test))


def _all_files(folder: Path, names: list[str]) -> bool:
    return all((folder / name).is_file() for name in names)


def _fetch_mnist_file(
    raw: Path,
    mirror_raw: Path | None,
    gz: str,
    md5: str,
    plain: str,
    urls: list[str],
) -> None:
    """Put the unpacked ``plain`` into ``raw`` from a local .gz, the mirror or the network."""
    what = f"MNIST/raw/{plain} (or {gz})"
    local = raw / gz
    if local.is_file():  # e.g. an earlier download: checked, removed if bad
        verify_md5(local, md5, remove=True, fix=REFETCH)
    elif mirror_raw is not None:
        if (mirror_raw / plain).is_file():
            copy_file(mirror_raw / plain, raw / plain)
            return
        if not (mirror_raw / gz).is_file():
            raise DataError(
                f"{plain} not found in data_mirror {mirror_raw.parent.parent}; put "
                f"{what} there, as torchvision lays it out"
            )
        verify_md5(mirror_raw / gz, md5, remove=False, fix=f"replace it with a good copy of {gz}")
        gunzip(mirror_raw / gz, raw / plain)
        return
    else:
        download_resumable([f"{base}{gz}" for base in urls], local, md5, what)
    gunzip(local, raw / plain)


def _mnist_split(dataset: torchvision.datasets.MNIST) -> Split:
    images = dataset.data.to(torch.uint8).unsqueeze(1).contiguous()
    return Split(images, dataset.targets.to(torch.int64).clone())


# ---------------------------------------------------------------- CIFAR-10


def _cifar_files(cls: type) -> list[tuple[str, str]]:
    return [(f, md5) for f, md5 in cls.train_list + cls.test_list] + [
        (cls.meta["filename"], cls.meta["md5"])
    ]


def _cifar_bad_file(cls: type, root: Path) -> str | None:
    """The first batch file under ``root`` that is missing or fails its md5, else None."""
    for filename, md5 in _cifar_files(cls):
        if not check_integrity(str(root / cls.base_folder / filename), md5):
            return filename
    return None


def _load_cifar10(root: Path, mirror: Path | None) -> Dataset:
    cls = torchvision.datasets.CIFAR10
    source_root = root
    if _cifar_bad_file(cls, root) is not None:
        archive = root / cls.filename
        what = f"{cls.filename} (or the unpacked {cls.base_folder}/)"
        if archive.is_file():  # e.g. an earlier download: checked, removed if bad
            verify_md5(archive, cls.tgz_md5, remove=True, fix=REFETCH)
            _extract_cifar(cls, archive, root)
        elif mirror is not None:
            source_root = _cifar_from_mirror(cls, root, mirror, what)
        else:
            download_resumable(cls.url, archive, cls.tgz_md5, what)
            _extract_cifar(cls, archive, root)
    try:
        train = cls(str(source_root), train=True, download=False)
        test = cls(str(source_root), train=False, download=False)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as error:
        raise _read_error(source_root / cls.base_folder, error) from None
    return Dataset("cifar10", list(train.classes), _cifar_split(train), _cifar_split(test))


def _cifar_from_mirror(cls: type, root: Path, mirror: Path, what: str) -> Path:
    """The root to read CIFAR-10 from: the mirror itself, or ``root`` after extraction."""
    if _cifar_bad_file(cls, mirror) is None:
        return mirror  # unpacked batches in the mirror: read in place
    archive = mirror / cls.filename
    if archive.is_file():
        verify_md5(
            archive, cls.tgz_md5, remove=False, fix=f"replace it with a good copy of {cls.filename}"
        )
        _extract_cifar(cls, archive, root)
        return root
    if (mirror / cls.base_folder).is_dir():
        bad = _cifar_bad_file(cls, mirror)
        raise DataError(
            f"{mirror / cls.base_folder / str(bad)} is missing or fails its md5; replace "
            f"{cls.base_folder}/ in data_mirror with a good copy, or put {cls.filename} there"
        )
    raise DataError(f"{cls.filename} not found in data_mirror {mirror}; put {what} there")


def _extract_cifar(cls: type, archive: Path, root: Path) -> None:
    """Unpack ``archive`` so that ``root/<base_folder>`` appears complete or not at all."""

    def problem(unpacked: Path) -> str | None:
        bad = _cifar_bad_file(cls, unpacked.parent)
        if bad is None:
            return None
        return (f"{cls.base_folder}/{bad} from {archive} is missing or fails its md5; "
                "replace the archive with a good copy")

    unpack_folder(archive, cls.base_folder, root / cls.base_folder, problem)


def _cifar_split(dataset: torchvision.datasets.CIFAR10) -> Split:
    images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
    return Split(images, torch.tensor(dataset.targets, dtype=torch.int64))
