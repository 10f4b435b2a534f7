"""Image folders: a directory or .zip of ``<split>/<class>/*.{png,jpg,jpeg}``.

Splits ``train`` and ``test``; one wrapping top-level folder is tolerated (the CIFAR-10
JPEG stand-in is ``cifar10-jpeg/{train,test}/<class>/NNNN.jpg``). Zip members are read
in place and decoded with PIL in sorted path order, so the tensors are deterministic.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from whitebox.data.dataset import Dataset, Split
from whitebox.data.errors import DataError, one_line

SUFFIXES = (".png", ".jpg", ".jpeg")
SPLITS = ("train", "test")
LAYOUT = "expected <path>/{train,test}/<class>/*.png|jpg (one wrapping folder allowed)"

Reader = Callable[[str], bytes]


def _list_files(path: Path) -> tuple[list[str], Reader, Callable[[], None]]:
    """Relative POSIX paths of the image files under ``path``, a reader, and a closer."""
    if path.is_dir():
        names = [
            p.relative_to(path).as_posix()
            for p in path.rglob("*")
            if p.suffix.lower() in SUFFIXES and p.is_file()
        ]
        return names, lambda name: (path / name).read_bytes(), lambda: None
    if path.is_file() and path.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise DataError(
                f"cannot open imagefolder zip {path} ({one_line(error, 80)}); replace it "
                "with a good copy"
            ) from None
        names = [
            info.filename
            for info in archive.infolist()
            if not info.is_dir() and PurePosixPath(info.filename).suffix.lower() in SUFFIXES
        ]
        return names, archive.read, archive.close
    if path.exists():
        raise DataError(f"imagefolder path {path} is neither a directory nor a .zip; {LAYOUT}")
    raise DataError(f"imagefolder path not found: {path}; {LAYOUT}")


def _index(path: Path, names: list[str]) -> dict[str, dict[str, list[str]]]:
    """{split: {class: sorted file names}} after dropping hidden files and one wrapper."""
    entries = [(PurePosixPath(name).parts, name) for name in names]
    entries = [(p, n) for p, n in entries if not any(x.startswith((".", "__MACOSX")) for x in p)]
    if not any(p[0] in SPLITS for p, _ in entries):
        tops = {p[0] for p, _ in entries if len(p) > 1}
        if len(tops) == 1:
            entries = [(p[1:], n) for p, n in entries if len(p) > 1]
    index: dict[str, dict[str, list[str]]] = {split: {} for split in SPLITS}
    for parts, name in entries:
        if len(parts) == 3 and parts[0] in SPLITS:
            index[parts[0]].setdefault(parts[1], []).append(name)
    missing = [split for split in SPLITS if not index[split]]
    if missing:
        raise DataError(f"imagefolder {path} has no images in split '{missing[0]}'; {LAYOUT}")
    for classes in index.values():
        for files in classes.values():
            files.sort()
    train, test = sorted(index["train"]), sorted(index["test"])
    if train != test:
        odd = sorted(set(train) ^ set(test))
        raise DataError(
            f"imagefolder {path}: train and test classes differ (e.g. '{odd[0]}'); both "
            "splits need the same class folders"
        )
    return index


def _decode(read: Reader, name: str, path: Path) -> np.ndarray:
    """One image as a uint8 (H, W, C) array: grey stays 1 channel, anything else is RGB."""
    try:
        image = Image.open(io.BytesIO(read(name)))
        if image.mode not in ("L", "RGB"):
            grey = image.mode in ("1", "LA", "I", "I;16", "F")
            image = image.convert("L" if grey else "RGB")
        width, height = image.size
        pixels = image.tobytes()  # decodes; cheaper than np.asarray for tiny images
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise DataError(
            f"cannot decode {name} in {path} ({one_line(error, 80)}); fix or delete the file"
        ) from None
    return np.frombuffer(pixels, np.uint8).reshape(height, width, -1)


def _check_sizes(arrays: list[np.ndarray], names: list[str], path: Path) -> None:
    """DataError naming the first image whose size differs from the first one."""
    size = arrays[0].shape[:2]
    for array, name in zip(arrays, names, strict=True):
        if array.shape[:2] != size:
            raise DataError(
                f"imagefolder {path}: {name} is {array.shape[1]}x{array.shape[0]} but "
                f"{names[0]} is {size[1]}x{size[0]}; all images must have the same size"
            )


def _stack(arrays: list[np.ndarray], channels: int) -> torch.Tensor:
    """(N, C, H, W) uint8 from (H, W, c) arrays, grey repeated when ``channels`` is 3."""
    if channels == 3:
        arrays = [np.repeat(a, 3, axis=2) if a.shape[2] == 1 else a for a in arrays]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_imagefolder(name: str, path: Path) -> Dataset:
    """Read a directory or .zip of ``{train,test}/<class>/*.{png,jpg,jpeg}`` into tensors.

    Classes are the sorted train folder names; labels follow that order.
    """
    path = Path(path).expanduser()
    names, read, close = _list_files(path)
    try:
        index = _index(path, names)
        classes = sorted(index["train"])
        total = sum(len(files) for split in SPLITS for files in index[split].values())
        # disable=None: a bar on a terminal, silent in logs
        bar = tqdm(total=total, desc=f"decoding {path.name}", unit="img", disable=None)
        splits: dict[str, tuple[list[np.ndarray], list[str], list[int]]] = {}
        with bar:
            for split in SPLITS:
                arrays, files, labels = [], [], []
                for label, cls in enumerate(classes):
                    for file in index[split][cls]:
                        arrays.append(_decode(read, file, path))
                        files.append(file)
                        labels.append(label)
                    bar.update(len(index[split][cls]))
                splits[split] = (arrays, files, labels)
    finally:
        close()
    all_arrays = splits["train"][0] + splits["test"][0]
    _check_sizes(all_arrays, splits["train"][1] + splits["test"][1], path)
    channels = max(a.shape[2] for a in all_arrays)  # grey is promoted if images mix
    del all_arrays
    return Dataset(
        name=name,
        classes=classes,
        train=Split(_stack(splits["train"][0], channels), _labels(splits["train"][2])),
        test=Split(_stack(splits["test"][0], channels), _labels(splits["test"][2])),
    )


def _labels(labels: list[int]) -> torch.Tensor:
    return torch.tensor(labels, dtype=torch.int64)
