"""A tiny CUB-200-2011 tree in the real format, for tests without the 1.1 GB archive.

Each image is a grey background with a rectangle "bird" in its class's colour that
fills exactly the image's bounding box, so crop tests can check the pixels.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

from PIL import Image

FOLDER = "CUB_200_2011"
BACKGROUND = (128, 128, 128)
BIRD_COLOURS = [(220, 30, 30), (30, 30, 220), (230, 220, 30), (30, 200, 60), (200, 40, 200)]


def bird_colour(label: int) -> tuple[int, int, int]:
    """Colour of the bird of 0-based class ``label``."""
    return BIRD_COLOURS[label % len(BIRD_COLOURS)]


def class_dir(label: int) -> str:
    """Folder name of 0-based class ``label``, e.g. ``001.Fake_bird_1``."""
    return f"{label + 1:03d}.Fake_bird_{label + 1}"


def fake_box(image_id: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The bird's box ``x y w h`` (integers) of image ``image_id``; varies with the id."""
    width, height = size
    w, h = width // 2, height // 2
    return 4 + (image_id * 7) % (width - w - 8), 3 + (image_id * 5) % (height - h - 6), w, h


def write_fake_cub(
    root: Path,
    n_classes: int = 3,
    train_per_class: int = 4,
    test_per_class: int = 2,
    size: tuple[int, int] = (80, 60),
    greyscale_one: bool = True,
) -> Path:
    """Write ``root/CUB_200_2011/`` (image ids 1..N by class, train and test interleaved
    within a class as in the real split file); image 1 is greyscale if ``greyscale_one``.
    Returns the tree."""
    tree = Path(root) / FOLDER
    (tree / "images").mkdir(parents=True)
    images, labels, splits, boxes, classes = [], [], [], [], []
    image_id = 0
    for label in range(n_classes):
        classes.append(f"{label + 1} {class_dir(label)}")
        (tree / "images" / class_dir(label)).mkdir()
        tests_left = test_per_class
        total = train_per_class + test_per_class
        for index in range(total):
            image_id += 1
            is_test = tests_left > 0 and (index % 2 == 1 or total - index <= tests_left)
            tests_left -= is_test
            relpath = f"{class_dir(label)}/Fake_Bird_{label + 1}_{index + 1:04d}_{image_id}.jpg"
            x, y, w, h = fake_box(image_id, size)
            image = Image.new("RGB", size, BACKGROUND)
            image.paste(bird_colour(label), (x, y, x + w, y + h))
            if greyscale_one and image_id == 1:
                image = image.convert("L")
            image.save(tree / "images" / relpath, quality=95)
            images.append(f"{image_id} {relpath}")
            labels.append(f"{image_id} {label + 1}")
            splits.append(f"{image_id} {0 if is_test else 1}")
            boxes.append(f"{image_id} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
    for name, lines in (
        ("images.txt", images),
        ("image_class_labels.txt", labels),
        ("train_test_split.txt", splits),
        ("bounding_boxes.txt", boxes),
        ("classes.txt", classes),
    ):
        (tree / name).write_text("\n".join(lines) + "\n")
    return tree


def make_fake_archive(tree_parent: Path, out: Path) -> str:
    """A .tgz of ``tree_parent/CUB_200_2011`` (plus a top-level attributes.txt, as the real
    archive has) at ``out``; returns its md5."""
    extra = Path(tree_parent) / "attributes.txt"
    extra.write_text("1 has_bill_shape::curved_(up_or_down)\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(out, "w:gz") as tar:
        tar.add(extra, arcname="attributes.txt")
        tar.add(Path(tree_parent) / FOLDER, arcname=FOLDER)
    extra.unlink()
    return hashlib.md5(out.read_bytes()).hexdigest()
