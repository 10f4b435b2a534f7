"""CUB-200-2011 (Caltech-UCSD Birds): 200 classes, 5,994 train / 5,794 test images.

The tree ``CUB_200_2011/`` comes from ``root`` (an earlier extraction), an archive in
``root``, the mirror (tree read in place, or archive extracted into ``root``), or the
network (resumable download). Archives are md5-checked and unpacked atomically, so the
tree in ``root`` is complete or absent. Images are cropped to their bounding box and
resized to size x size as in ProtoPNet (or, with ``crop="none"``, resized and centre
cropped), decoded by a process pool in a fixed order, so the tensors do not depend on
the number of workers. Torchvision has no CUB class.
"""

from __future__ import annotations

import math
import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from whitebox.data.dataset import Dataset, Split
from whitebox.data.errors import DataError, one_line
from whitebox.data.files import REFETCH, download_resumable, unpack_folder, verify_md5

URL = "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1"
MD5 = "97eceeb196236b17998738112f37df78"
SIZE = 1_150_585_339
ARCHIVE = "CUB_200_2011.tgz"
FOLDER = "CUB_200_2011"
TEXT_FILES = (
    "images.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "classes.txt",
)
CROPS = ("bbox", "none")
WHAT = f"{ARCHIVE} (or the unpacked {FOLDER}/)"
CHUNKSIZE = 16  # images per task handed to a worker


def load_cub(
    name: str,
    root: Path,
    mirror: Path | None = None,
    crop: str = "bbox",
    size: int = 224,
    workers: int = 1,
) -> Dataset:
    """CUB-200-2011 as uint8 (N, 3, size, size) tensors, fetched into ``root`` if needed.

    Classes are classes.txt's names in class-id order; each split is in image-id order.
    """
    if crop not in CROPS:
        raise DataError(f"unknown crop {crop!r} for dataset '{name}'; valid: {', '.join(CROPS)}")
    if size < 1:
        raise DataError(f"image size {size} for dataset '{name}' must be positive; fix size")
    root = Path(root).expanduser()
    mirror = Path(mirror).expanduser() if mirror is not None else None
    if mirror is not None and not mirror.is_dir():
        raise DataError(f"data_mirror {mirror} is not a directory; fix data_mirror in the config")
    tree = find_tree(root, mirror)
    meta = read_metadata(tree)
    train = _decode_split(tree, meta, meta.train_ids, crop, size, workers, "train")
    test = _decode_split(tree, meta, meta.test_ids, crop, size, workers, "test")
    return Dataset(name, meta.classes, train, test)


# ---------------------------------------------------------------- finding the tree


def find_tree(root: Path, mirror: Path | None) -> Path:
    """The complete ``CUB_200_2011/`` folder to read, extracting or downloading if needed."""
    target = root / FOLDER
    if target.exists():
        _check_tree(target)
        return target
    archive = root / ARCHIVE
    if archive.is_file():  # e.g. an earlier download: checked, removed if bad
        verify_md5(archive, MD5, remove=True, fix=REFETCH)
        _extract(archive, target)
        return target
    if mirror is not None:
        if (mirror / FOLDER).exists():
            _check_tree(mirror / FOLDER)
            return mirror / FOLDER  # read in place, never modified
        if not (mirror / ARCHIVE).is_file():
            raise DataError(f"{ARCHIVE} not found in data_mirror {mirror}; put {WHAT} there")
        verify_md5(mirror / ARCHIVE, MD5, remove=False, fix=f"replace it with a good copy of {ARCHIVE}")
        _extract(mirror / ARCHIVE, target)
        return target
    download_resumable(URL, archive, MD5, WHAT, size=SIZE)
    _extract(archive, target)
    return target


def _missing(tree: Path) -> str | None:
    """The first of the five text files or images/ missing from ``tree``, else None."""
    for file in TEXT_FILES:
        if not (tree / file).is_file():
            return file
    return None if (tree / "images").is_dir() else "images/"


def _check_tree(tree: Path) -> None:
    missing = _missing(tree)
    if missing is not None:
        raise DataError(
            f"{missing} is missing from {tree}; restore it, or replace {tree} with a complete "
            f"copy (delete it to fetch {ARCHIVE} again)"
        )


def _extract(archive: Path, target: Path) -> None:
    """Unpack ``archive``'s tree as ``target`` (its top-level attributes.txt is left out)."""

    def problem(unpacked: Path) -> str | None:
        missing = _missing(unpacked)
        if missing is None:
            return None
        return f"{archive} holds no {FOLDER}/{missing}; replace it with a good copy"

    unpack_folder(archive, FOLDER, target, problem)


# ---------------------------------------------------------------- metadata


@dataclass
class Metadata:
    """The text files of a tree, checked against each other (ids are 1-based)."""

    classes: list[str]
    paths: dict[int, str]  # image id -> path relative to images/
    labels: dict[int, int]  # image id -> 0-based class
    boxes: dict[int, tuple[float, float, float, float]]  # image id -> x, y, w, h
    train_ids: list[int]
    test_ids: list[int]


def _read_table(tree: Path, file: str, fields: int) -> dict[int, list[str]]:
    """``{id: other fields}`` of a whitespace-separated text file with ``fields`` columns."""
    path = tree / file
    table: dict[int, list[str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path} ({one_line(error, 80)}); replace it with a good copy") from None
    for number, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != fields or not parts[0].isdigit():
            raise DataError(
                f"{path} line {number} is not '<id>' and {fields - 1} field(s): {line[:60]!r}; "
                "replace the file with a good copy"
            )
        key = int(parts[0])
        if key in table:
            raise DataError(f"{path} lists id {key} twice (line {number}); replace it with a good copy")
        table[key] = parts[1:]
    if not table:
        raise DataError(f"{path} is empty; replace it with a good copy")
    return table


def _number(path: Path, key: int, text: str, kind: type) -> float:
    try:
        return kind(text)
    except ValueError:
        raise DataError(
            f"{path}: id {key} has {text!r}, not a number; replace the file with a good copy"
        ) from None


def read_metadata(tree: Path) -> Metadata:
    """Parse and cross-check the five text files of ``tree``."""
    images = _read_table(tree, "images.txt", 2)
    labels = _read_table(tree, "image_class_labels.txt", 2)
    splits = _read_table(tree, "train_test_split.txt", 2)
    boxes = _read_table(tree, "bounding_boxes.txt", 5)
    class_rows = _read_table(tree, "classes.txt", 2)

    if sorted(class_rows) != list(range(1, len(class_rows) + 1)):
        raise DataError(
            f"{tree / 'classes.txt'} does not number its classes 1..{len(class_rows)}; "
            "replace it with a good copy"
        )
    classes = [class_rows[key][0] for key in range(1, len(class_rows) + 1)]
    for file, table in (
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", splits),
        ("bounding_boxes.txt", boxes),
    ):
        if table.keys() != images.keys():
            odd = min(table.keys() ^ images.keys())
            side = "lacks" if odd in images else "has an extra"
            raise DataError(
                f"{tree / file} {side} image id {odd} (compared with images.txt); the files "
                f"of {tree} disagree: replace them with a good copy"
            )

    meta = Metadata(classes, {}, {}, {}, [], [])
    for key in sorted(images):
        relpath = images[key][0]
        if relpath.startswith("/") or ".." in Path(relpath).parts:
            raise DataError(f"{tree / 'images.txt'}: id {key} has path {relpath!r} outside images/")
        if not (tree / "images" / relpath).is_file():
            raise DataError(
                f"image {tree / 'images' / relpath} (id {key} in images.txt) is missing; "
                f"restore it, or replace {tree} with a complete copy"
            )
        label = int(_number(tree / "image_class_labels.txt", key, labels[key][0], int))
        if not 1 <= label <= len(classes):
            raise DataError(
                f"{tree / 'image_class_labels.txt'}: image id {key} has class {label}, outside "
                f"1..{len(classes)} of classes.txt; replace the files with a good copy"
            )
        flag = splits[key][0]
        if flag not in ("0", "1"):
            raise DataError(
                f"{tree / 'train_test_split.txt'}: image id {key} has {flag!r}, not 1 (train) "
                "or 0 (test); replace the file with a good copy"
            )
        x, y, w, h = (_number(tree / "bounding_boxes.txt", key, v, float) for v in boxes[key])
        meta.paths[key] = relpath
        meta.labels[key] = label - 1
        meta.boxes[key] = (x, y, w, h)
        (meta.train_ids if flag == "1" else meta.test_ids).append(key)
    return meta


# ---------------------------------------------------------------- decoding


def crop_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) integer pixels of an ``x y w h`` box, clamped to the image
    and at least one pixel wide and high."""
    x, y, w, h = box
    left = min(max(math.floor(x), 0), width - 1)
    top = min(max(math.floor(y), 0), height - 1)
    right = max(min(math.ceil(x + w), width), left + 1)
    bottom = max(min(math.ceil(y + h), height), top + 1)
    return left, top, right, bottom


def _resize_centre_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (bilinear), then the central size x size square, as
    torchvision's Resize(size) + CenterCrop(size)."""
    width, height = image.size
    if width <= height:
        new = (size, max(size, int(size * height / width)))
    else:
        new = (max(size, int(size * width / height)), size)
    image = image.resize(new, Image.Resampling.BILINEAR)
    left = int(round((new[0] - size) / 2.0))
    top = int(round((new[1] - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


Task = tuple[str, tuple[float, float, float, float], str, int]


def _decode(task: Task) -> tuple[np.ndarray | None, str | None]:
    """One image as uint8 (size, size, 3), or (None, error text). Runs in a worker."""
    path, box, crop, size = task
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # a few CUB images are greyscale
        if crop == "bbox":
            image = image.crop(crop_box(box, *image.size))
            image = image.resize((size, size), Image.Resampling.BILINEAR)
        else:
            image = _resize_centre_crop(image, size)
        pixels = np.array(image, dtype=np.uint8)  # writable, so torch can wrap it
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as error:
        return None, one_line(error, 80)
    return pixels, None


def _decode_split(
    tree: Path, meta: Metadata, ids: list[int], crop: str, size: int, workers: int, split: str
) -> Split:
    images = torch.empty((len(ids), 3, size, size), dtype=torch.uint8)
    tasks: list[Task] = [
        (str(tree / "images" / meta.paths[key]), meta.boxes[key], crop, size) for key in ids
    ]
    bar = tqdm(total=len(ids), desc=f"decoding {FOLDER} {split}", unit="img", disable=None)
    pool = multiprocessing.Pool(workers) if workers > 1 and len(ids) > 1 else None
    try:
        results = pool.imap(_decode, tasks, chunksize=CHUNKSIZE) if pool else map(_decode, tasks)
        with bar:
            for index, (pixels, error) in enumerate(results):
                if pixels is None:
                    raise DataError(
                        f"cannot decode {tasks[index][0]} ({error}); replace it with a good copy "
                        f"(or delete {tree} to unpack {ARCHIVE} again)"
                    )
                images[index] = torch.from_numpy(pixels).permute(2, 0, 1)
                bar.update(1)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    labels = torch.tensor([meta.labels[key] for key in ids], dtype=torch.int64)
    return Split(images, labels)

