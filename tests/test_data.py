"""whitebox.data: synthetic set, prepared-file round trip, image folders, torchvision
sources with mirrors, md5 checks and the one-line errors. No network is used: CIFAR-10
and MNIST downloads are faked with tiny files, patched md5s and a local HTTP server."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from tests.conftest import serving
from whitebox.data import (
    DataError,
    Dataset,
    Split,
    load_imagefolder,
    load_prepared,
    make_synthetic,
    mean_std,
    prepare_dataset,
    read_source,
)

CIFAR10_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    """Temporary or partial files anywhere under ``folder``."""
    return [p.name for p in folder.rglob("*") if p.name.endswith((".tmp", ".part"))]


def _one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------- synthetic


SYNTHETIC = {"source": "synthetic", "classes": ["disc", "square", "cross"]}


def test_synthetic_shapes_dtypes_and_balance() -> None:
    data = make_synthetic("shapes", ["a", "b", "c", "d"], train_per_class=30, test_per_class=7)
    assert data.classes == ["a", "b", "c", "d"]
    assert data.train.images.shape == (120, 3, 32, 32)
    assert data.test.images.shape == (28, 3, 32, 32)
    assert data.train.images.dtype == torch.uint8
    assert data.train.labels.dtype == torch.int64
    assert data.train.labels.bincount().tolist() == [30] * 4
    assert data.test.labels.bincount().tolist() == [7] * 4
    assert (data.in_channels, data.image_size, data.num_classes) == (3, 32, 4)
    assert data.train.images.float().std() > 20  # not a blank image


def test_synthetic_grey_defaults_to_28_pixels() -> None:
    data = make_synthetic("grey", ["a", "b"], channels=1, train_per_class=5, test_per_class=5)
    assert data.train.images.shape == (10, 1, 28, 28)
    sized = make_synthetic("grey", ["a", "b"], channels=1, image_size=20, train_per_class=2)
    assert sized.image_shape == (1, 20, 20)


def test_synthetic_is_deterministic() -> None:
    first = make_synthetic("s", ["x", "y", "z"])
    second = make_synthetic("s", ["x", "y", "z"])
    assert torch.equal(first.train.images, second.train.images)
    assert torch.equal(first.test.images, second.test.images)
    assert torch.equal(first.train.labels, second.train.labels)
    assert not torch.equal(first.train.images[:50], first.test.images[:50])


@pytest.mark.parametrize("num_classes", [2, 10, 13])
def test_synthetic_any_number_of_classes(num_classes: int) -> None:
    classes = [f"c{i}" for i in range(num_classes)]
    data = make_synthetic("s", classes, train_per_class=8, test_per_class=2)
    assert data.train.labels.bincount().tolist() == [8] * num_classes
    firsts = [data.train.images[data.train.labels == c][0] for c in range(num_classes)]
    assert len({bytes(image.numpy()) for image in firsts}) == num_classes


def test_synthetic_is_fast() -> None:
    start = time.perf_counter()
    make_synthetic("s", [str(i) for i in range(10)])  # 2500 images: ~0.1 s on an idle core
    assert time.perf_counter() - start < 5.0  # generous: shared CI cores are noisy


# ---------------------------------------------------------------- prepared files


def test_prepare_and_load_round_trip(tmp_path: Path) -> None:
    out = tmp_path / "shapes" / "tensors.pt"
    made = prepare_dataset("shapes", SYNTHETIC, tmp_path / "shapes", out)
    loaded = load_prepared(out)
    assert loaded.name == "shapes"
    assert loaded.classes == SYNTHETIC["classes"]
    assert torch.equal(loaded.train.images, made.train.images)
    assert torch.equal(loaded.test.labels, made.test.labels)
    assert read_source(out) == SYNTHETIC
    assert sorted(p.name for p in out.parent.iterdir()) == ["tensors.pt"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_prepare_is_byte_identical_twice(tmp_path: Path) -> None:
    prepare_dataset("s", SYNTHETIC, tmp_path, tmp_path / "a.pt")
    prepare_dataset("s", SYNTHETIC, tmp_path, tmp_path / "b.pt")
    assert load_prepared(tmp_path / "a.pt").train.images.equal(
        load_prepared(tmp_path / "b.pt").train.images
    )


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save(obj: object, file) -> None:  # writes half a file, then the job is killed
        file.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("s", SYNTHETIC, tmp_path, tmp_path / "tensors.pt")
    assert list(tmp_path.iterdir()) == []


def test_subset_relabels_in_given_order(tmp_path: Path) -> None:
    out = tmp_path / "tensors.pt"
    full = prepare_dataset("shapes", SYNTHETIC, tmp_path, out)
    sub = load_prepared(out, classes=["cross", "disc"])
    assert sub.classes == ["cross", "disc"]
    assert sub.train.labels.bincount().tolist() == [200, 200]
    assert len(sub.test) == 100
    cross = full.train.images[full.train.labels == 2]
    assert torch.equal(sub.train.images[sub.train.labels == 0], cross)


def test_unknown_class_lists_valid_names(tmp_path: Path) -> None:
    out = tmp_path / "tensors.pt"
    prepare_dataset("shapes", SYNTHETIC, tmp_path, out)
    with pytest.raises(DataError) as error:
        load_prepared(out, classes=["disc", "hexagon"])
    assert "hexagon" in _one_line(error)
    assert "disc, square, cross" in str(error.value)


def test_missing_prepared_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_prepared(tmp_path / "data" / "cifar10" / "tensors.pt")
    assert "snakemake" in _one_line(error) and "tensors.pt" in str(error.value)


def test_unreadable_prepared_file(tmp_path: Path) -> None:
    bad = tmp_path / "tensors.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="cannot read prepared dataset"):
        load_prepared(bad)


def test_mean_std_per_channel() -> None:
    images = torch.zeros(4, 2, 3, 3, dtype=torch.uint8)
    images[:, 0] = 255
    images[:2, 1] = 255
    mean, std = mean_std(Split(images, torch.zeros(4, dtype=torch.int64)))
    assert mean == pytest.approx([1.0, 0.5])
    assert std == pytest.approx([0.0, 0.5])


def test_split_rejects_wrong_dtypes() -> None:
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError):
        Split(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


# ---------------------------------------------------------------- image folders


def _image_bytes(value: int, mode: str = "RGB", fmt: str = "PNG") -> bytes:
    image = Image.new(mode, (8, 6), (value, 255 - value, 7) if mode == "RGB" else value)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def _folder_files(wrapper: str = "", mode: str = "RGB") -> dict[str, bytes]:
    """{relative path: bytes} of a 2-class, 2-split image folder (PNG and JPEG mixed)."""
    files = {}
    for split, count in (("train", 3), ("test", 2)):
        for k, cls in enumerate(("dog", "cat")):
            for i in range(count):
                fmt, ext = ("JPEG", "jpg") if i == 1 else ("PNG", "png")
                name = f"{wrapper}{split}/{cls}/{i:04d}.{ext}"
                files[name] = _image_bytes(40 * k + 10 * i, mode, fmt)
    files[f"{wrapper}train/.DS_Store"] = b"junk"
    files[f"{wrapper}README.txt"] = b"not an image"
    return files


def _write_dir(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def _check_folder(data: Dataset, channels: int) -> None:
    assert data.classes == ["cat", "dog"]  # sorted folder names
    assert data.train.images.shape == (6, channels, 6, 8)
    assert data.test.images.shape == (4, channels, 6, 8)
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert data.test.labels.tolist() == [0, 0, 1, 1]
    assert data.train.images.dtype == torch.uint8


def test_imagefolder_directory(tmp_path: Path) -> None:
    data = load_imagefolder("pets", _write_dir(tmp_path / "pets", _folder_files()))
    _check_folder(data, 3)
    cat_png = data.train.images[0]  # train/cat/0000.png: value 40
    assert cat_png[:, 0, 0].tolist() == [40, 215, 7]


def test_imagefolder_zip_with_wrapper_folder(tmp_path: Path) -> None:
    files = _folder_files(wrapper="pets-v1/")
    from_zip = load_imagefolder("pets", _write_zip(tmp_path / "pets.zip", files))
    _check_folder(from_zip, 3)
    from_dir = load_imagefolder("pets", _write_dir(tmp_path / "dir", files))
    assert torch.equal(from_zip.train.images, from_dir.train.images)


def test_imagefolder_grey_stays_one_channel(tmp_path: Path) -> None:
    data = load_imagefolder("g", _write_zip(tmp_path / "g.zip", _folder_files(mode="L")))
    _check_folder(data, 1)


def test_imagefolder_via_prepare(tmp_path: Path) -> None:
    path = _write_zip(tmp_path / "pets.zip", _folder_files())
    source = {"source": "imagefolder", "path": str(path)}
    prepare_dataset("pets", source, tmp_path / "pets", tmp_path / "pets" / "tensors.pt")
    prepared = load_prepared(tmp_path / "pets" / "tensors.pt")
    direct = load_imagefolder("pets", path)
    # The prepared splits hold the same images in a fixed shuffled order.
    for split, unsorted in ((prepared.train, direct.train), (prepared.test, direct.test)):
        assert sorted(split.labels.tolist()) == unsorted.labels.tolist()
        order = torch.randperm(len(unsorted), generator=torch.Generator().manual_seed(0))
        assert torch.equal(split.images, unsorted.images[order])


def test_imagefolder_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError) as error:
        load_imagefolder("x", tmp_path / "nowhere.zip")
    assert "nowhere.zip" in _one_line(error) and "train,test" in str(error.value)


def test_imagefolder_without_test_split(tmp_path: Path) -> None:
    files = {k: v for k, v in _folder_files().items() if not k.startswith("test/")}
    with pytest.raises(DataError, match="no images in split 'test'"):
        load_imagefolder("x", _write_dir(tmp_path / "x", files))


def test_imagefolder_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images in split 'train'"):
        load_imagefolder("x", tmp_path)


def test_imagefolder_class_mismatch(tmp_path: Path) -> None:
    files = {k: v for k, v in _folder_files().items() if not k.startswith("test/dog")}
    with pytest.raises(DataError, match="classes differ.*'dog'"):
        load_imagefolder("x", _write_dir(tmp_path / "x", files))


def test_imagefolder_corrupt_image_names_it(tmp_path: Path) -> None:
    files = _folder_files()
    files["train/dog/0002.png"] = b"\x89PNG broken"
    with pytest.raises(DataError, match="train/dog/0002.png"):
        load_imagefolder("x", _write_zip(tmp_path / "x.zip", files))


@pytest.mark.slow
def test_imagefolder_real_cifar10_jpeg(shared_data: Path, tmp_path: Path) -> None:
    start = time.perf_counter()
    data = load_imagefolder("cifar10", shared_data / "cifar10-jpeg.zip")
    elapsed = time.perf_counter() - start
    assert data.classes == CIFAR10_CLASSES
    assert data.train.images.shape == (50000, 3, 32, 32)
    assert data.test.images.shape == (10000, 3, 32, 32)
    assert data.train.labels.bincount().tolist() == [5000] * 10
    assert data.test.labels.bincount().tolist() == [1000] * 10
    assert elapsed < 60, f"decoding took {elapsed:.1f} s"


# ---------------------------------------------------------------- MNIST


def test_mnist_from_real_mirror(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "mnist" / "tensors.pt"
    source = {"source": "torchvision"}
    prepare_dataset("mnist", source, tmp_path / "mnist", out, mirror=shared_data)
    data = load_prepared(out)
    assert data.classes == [str(d) for d in range(10)]
    assert data.train.images.shape == (60000, 1, 28, 28)
    assert data.test.images.shape == (10000, 1, 28, 28)
    assert int(data.train.labels.min()) == 0 and int(data.train.labels.max()) == 9
    assert data.train.labels[:5].tolist() == [5, 0, 4, 1, 9]  # the famous first digits
    mean, std = mean_std(data.train)
    assert mean[0] == pytest.approx(0.1307, abs=1e-4)
    assert std[0] == pytest.approx(0.3081, abs=1e-4)
    assert not (tmp_path / "mnist" / "MNIST").exists()  # mirror read in place


def _idx(images: np.ndarray | None = None, labels: np.ndarray | None = None) -> bytes:
    if images is not None:
        return struct.pack(">IIII", 2051, *images.shape) + images.tobytes()
    assert labels is not None
    return struct.pack(">II", 2049, len(labels)) + labels.tobytes()


@pytest.fixture
def fake_mnist_gz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mirror with tiny gzipped MNIST files; torchvision's md5s patched to match."""
    raw = tmp_path / "mirror" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    contents = {
        "train-images-idx3-ubyte": _idx(images=rng.integers(0, 256, (12, 28, 28), np.uint8)),
        "train-labels-idx1-ubyte": _idx(labels=np.arange(12, dtype=np.uint8) % 10),
        "t10k-images-idx3-ubyte": _idx(images=rng.integers(0, 256, (4, 28, 28), np.uint8)),
        "t10k-labels-idx1-ubyte": _idx(labels=np.array([3, 1, 4, 1], np.uint8)),
    }
    resources = []
    for name, data in contents.items():
        (raw / f"{name}.gz").write_bytes(gzip.compress(data, mtime=0))
        resources.append((f"{name}.gz", _md5(raw / f"{name}.gz")))
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", resources)
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    return tmp_path / "mirror"


def test_mnist_from_gz_mirror(tmp_path: Path, fake_mnist_gz: Path) -> None:
    root = tmp_path / "root"
    data = prepare_dataset("mnist", {"source": "torchvision"}, root, root / "t.pt", fake_mnist_gz)
    assert data.train.images.shape == (12, 1, 28, 28)
    assert data.test.labels.tolist() == [3, 1, 4, 1]
    assert (root / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert _leftovers(root) == []


def test_mnist_corrupt_gz_in_mirror(tmp_path: Path, fake_mnist_gz: Path) -> None:
    bad = fake_mnist_gz / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        prepare_dataset("mnist", {"source": "torchvision"}, root, root / "t.pt", fake_mnist_gz)
    assert "md5 mismatch for" in _one_line(error) and "t10k-images-idx3-ubyte.gz" in str(error.value)
    assert bad.is_file()  # the mirror is the user's: never deleted
    assert not (root / "t.pt").exists() and _leftovers(root) == []


def test_mnist_no_network_no_mirror(tmp_path: Path, fake_mnist_gz: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        prepare_dataset("mnist", {"source": "torchvision"}, root, root / "t.pt")
    message = _one_line(error)
    assert "train-images-idx3-ubyte" in message and "data_mirror" in message
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_mnist_truncated_raw_file(tmp_path: Path, fake_mnist_gz: Path) -> None:
    root = tmp_path / "root"
    prepare_dataset("mnist", {"source": "torchvision"}, root, root / "t.pt", fake_mnist_gz)
    images = root / "MNIST" / "raw" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(DataError, match="truncated or corrupt"):
        prepare_dataset("mnist", {"source": "torchvision"}, root, root / "t.pt")


# ---------------------------------------------------------------- CIFAR-10


@dataclass
class _FakeCifar:
    """Paths of a tiny CIFAR-10 in torchvision's pickle format (batches and .tar.gz)."""

    folder: Path
    archive: Path


@pytest.fixture
def fake_cifar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> _FakeCifar:
    """A 2-batch CIFAR-10 look-alike; torchvision's file lists, md5s and url patched."""
    cls = torchvision.datasets.CIFAR10
    build = tmp_path / "build"
    folder = build / cls.base_folder
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    lists: dict[str, list[list[str]]] = {"train": [], "test": []}
    for split, name, count in (("train", "data_batch_1", 20), ("test", "test_batch", 10)):
        batch = {
            "data": rng.integers(0, 256, (count, 3072), np.uint8),
            "labels": [i % 10 for i in range(count)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
        lists[split].append([name, _md5(folder / name)])
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": CIFAR10_CLASSES}))
    archive = build / cls.filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=cls.base_folder)
    monkeypatch.setattr(cls, "train_list", lists["train"])
    monkeypatch.setattr(cls, "test_list", lists["test"])
    monkeypatch.setattr(
        cls, "meta", {**cls.meta, "md5": _md5(folder / "batches.meta")}
    )
    monkeypatch.setattr(cls, "tgz_md5", _md5(archive))
    monkeypatch.setattr(cls, "url", f"http://127.0.0.1:9/{cls.filename}")
    return _FakeCifar(folder, archive)


def _prepare_cifar(root: Path, mirror: Path | None = None) -> Dataset:
    return prepare_dataset("cifar10", {"source": "torchvision"}, root, root / "t.pt", mirror)


def _check_cifar(data: Dataset) -> None:
    assert data.classes == CIFAR10_CLASSES
    assert data.train.images.shape == (20, 3, 32, 32)
    assert data.test.images.shape == (10, 3, 32, 32)
    assert data.train.labels.tolist()[:11] == list(range(10)) + [0]


def test_cifar_mirror_with_batches_read_in_place(tmp_path: Path, fake_cifar: _FakeCifar) -> None:
    root = tmp_path / "root"
    data = _prepare_cifar(root, mirror=fake_cifar.folder.parent)
    _check_cifar(data)
    raw = pickle.loads((fake_cifar.folder / "data_batch_1").read_bytes())["data"]
    assert data.train.images[3].flatten().tolist() == raw[3].tolist()  # CHW order kept
    assert sorted(p.name for p in root.iterdir()) == ["t.pt"]


def test_cifar_mirror_with_archive_is_extracted(tmp_path: Path, fake_cifar: _FakeCifar) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fake_cifar.archive.rename(mirror / fake_cifar.archive.name)
    root = tmp_path / "root"
    _check_cifar(_prepare_cifar(root, mirror))
    assert (root / "cifar-10-batches-py" / "data_batch_1").is_file()
    assert _leftovers(root) == [] and not list(root.glob(".*"))
    _check_cifar(_prepare_cifar(root))  # second run: already there, no mirror needed


def test_cifar_corrupt_archive_in_root_is_removed(tmp_path: Path, fake_cifar: _FakeCifar) -> None:
    root = tmp_path / "root"
    root.mkdir()
    bad = root / fake_cifar.archive.name
    bad.write_bytes(fake_cifar.archive.read_bytes()[:-100])  # truncated
    with pytest.raises(DataError) as error:
        _prepare_cifar(root)
    message = _one_line(error)
    assert message.startswith(f"md5 mismatch for {bad}") and "removed" in message
    assert not bad.exists() and not (root / "t.pt").exists()


def test_cifar_corrupt_archive_in_mirror(tmp_path: Path, fake_cifar: _FakeCifar) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    bad = mirror / fake_cifar.archive.name
    bad.write_bytes(b"garbage" + fake_cifar.archive.read_bytes()[7:])
    root = tmp_path / "root"
    with pytest.raises(DataError, match="md5 mismatch for .*cifar-10-python.tar.gz"):
        _prepare_cifar(root, mirror)
    assert bad.is_file()  # a mirror is read-only to us
    assert not root.exists() or list(root.iterdir()) == []


def test_cifar_empty_mirror(tmp_path: Path, fake_cifar: _FakeCifar) -> None:
    with pytest.raises(DataError) as error:
        _prepare_cifar(tmp_path / "root", mirror=tmp_path)
    assert "cifar-10-python.tar.gz not found in data_mirror" in _one_line(error)


def test_cifar_no_network_no_mirror(tmp_path: Path, fake_cifar: _FakeCifar) -> None:
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        _prepare_cifar(root)
    message = _one_line(error)
    assert "cifar-10-python.tar.gz" in message and "data_mirror" in message
    assert list(root.iterdir()) == []  # no partial download left


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A local HTTP server (base url, served folder): downloads without a network."""
    served = tmp_path / "served"
    served.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(served))
    with serving(handler) as url:
        yield url, served


def test_cifar_download(
    tmp_path: Path,
    fake_cifar: _FakeCifar,
    http_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, served = http_server
    (served / fake_cifar.archive.name).write_bytes(fake_cifar.archive.read_bytes())
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", f"{url}/{fake_cifar.archive.name}")
    root = tmp_path / "root"
    _check_cifar(_prepare_cifar(root))
    assert (root / fake_cifar.archive.name).is_file()  # kept, like torchvision does
    assert _leftovers(root) == []


def test_cifar_truncated_download_is_removed(
    tmp_path: Path,
    fake_cifar: _FakeCifar,
    http_server: tuple[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, served = http_server
    (served / fake_cifar.archive.name).write_bytes(fake_cifar.archive.read_bytes()[:-50])
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "url", f"{url}/{fake_cifar.archive.name}")
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        _prepare_cifar(root)
    message = _one_line(error)
    assert message.startswith("md5 mismatch for") and "removed" in message
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_cifar_corrupt_batch_in_root_is_refetched(
    tmp_path: Path, fake_cifar: _FakeCifar
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    fake_cifar.archive.rename(mirror / fake_cifar.archive.name)
    root = tmp_path / "root"
    _prepare_cifar(root, mirror)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"oops")
    _check_cifar(_prepare_cifar(root, mirror))


def test_unknown_torchvision_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mnist, cifar10"):
        prepare_dataset("svhn", {"source": "torchvision"}, tmp_path, tmp_path / "t.pt")
