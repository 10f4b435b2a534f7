"""CUB-200-2011 source (fake tree and archive), resumable downloads, pretrained weights."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.conftest import ServedFiles, file_server
from tests.fake_cub import (
    BACKGROUND,
    FOLDER,
    bird_colour,
    class_dir,
    make_fake_archive,
    write_fake_cub,
)
from whitebox.data import DataError, load_cub, load_prepared, prepare_dataset
from whitebox.data import cub as cub_module
from whitebox.data import files as files_module
from whitebox.data.weights import WeightsUnavailable, fetch_weights, load_state_dict_file

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused
N_TRAIN, N_TEST = 12, 6  # write_fake_cub's defaults: 3 classes x (4 train + 2 test)


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _leftovers(root: Path) -> list[str]:
    """Names in ``root`` that an interrupted or failed step might leave behind."""
    return sorted(p.name for p in root.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def _check(dataset, size: int = 32) -> None:
    assert dataset.classes == [class_dir(label) for label in range(3)]
    assert dataset.train.images.shape == (N_TRAIN, 3, size, size)
    assert dataset.test.images.shape == (N_TEST, 3, size, size)
    assert dataset.train.images.dtype == torch.uint8
    # ids run by class, so the id-ordered splits are sorted by label
    assert dataset.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert dataset.test.labels.tolist() == [0] * 2 + [1] * 2 + [2] * 2


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files_module, "RETRY_BACKOFF_S", 0)


@pytest.fixture
def fake_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake CUB_200_2011.tgz (outside root and mirror) whose md5 and size the module
    expects; download urls point nowhere unless a test sets them."""
    source = tmp_path / "source"
    write_fake_cub(source)
    archive = tmp_path / "archives" / cub_module.ARCHIVE
    monkeypatch.setattr(cub_module, "MD5", make_fake_archive(source, archive))
    monkeypatch.setattr(cub_module, "SIZE", archive.stat().st_size)
    monkeypatch.setattr(cub_module, "URL", f"{UNREACHABLE}/{cub_module.ARCHIVE}")
    return archive


# ---------------------------------------------------------------- trees and archives


def test_tree_in_root(tmp_path: Path) -> None:
    write_fake_cub(tmp_path / "root")
    _check(load_cub("cub200", tmp_path / "root", None, size=32))


def test_tree_in_mirror_is_read_in_place(tmp_path: Path) -> None:
    write_fake_cub(tmp_path / "mirror")
    before = _snapshot(tmp_path / "mirror")
    dataset = load_cub("birds", tmp_path / "root", tmp_path / "mirror", size=32)
    _check(dataset)
    assert dataset.name == "birds"
    assert _snapshot(tmp_path / "mirror") == before
    assert not (tmp_path / "root" / FOLDER).exists()


def test_archive_in_mirror(tmp_path: Path, fake_archive: Path) -> None:
    mirror = fake_archive.parent
    before = _snapshot(mirror)
    root = tmp_path / "root"
    _check(load_cub("cub200", root, mirror, size=32))
    assert _snapshot(mirror) == before
    assert (root / FOLDER / "classes.txt").is_file()
    assert not (root / FOLDER / "attributes.txt").exists()  # only the tree is lifted
    assert _leftovers(root) == []
    _check(load_cub("cub200", root, None, size=32))  # the extracted tree is reused


def test_archive_in_root(tmp_path: Path, fake_archive: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(fake_archive, root / cub_module.ARCHIVE)
    _check(load_cub("cub200", root, None, size=32))
    assert (root / FOLDER / "images").is_dir()
    assert _leftovers(root) == []


def test_wrong_md5_in_root_is_removed(tmp_path: Path, fake_archive: Path, monkeypatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    shutil.copy(fake_archive, root / cub_module.ARCHIVE)
    monkeypatch.setattr(cub_module, "MD5", "0" * 32)
    with pytest.raises(DataError) as error:
        load_cub("cub200", root, None, size=32)
    message = _one_line(error)
    assert message.startswith("md5 mismatch for") and "removed" in message and "rerun" in message
    assert list(root.iterdir()) == []


def test_wrong_md5_in_mirror_is_kept(tmp_path: Path, fake_archive: Path, monkeypatch) -> None:
    monkeypatch.setattr(cub_module, "MD5", "0" * 32)
    with pytest.raises(DataError) as error:
        load_cub("cub200", tmp_path / "root", fake_archive.parent, size=32)
    message = _one_line(error)
    assert "md5 mismatch" in message and "good copy" in message
    assert fake_archive.is_file()


def test_truncated_archive_leaves_no_tree(tmp_path: Path, fake_archive: Path, monkeypatch) -> None:
    root = tmp_path / "root"
    root.mkdir()
    data = fake_archive.read_bytes()
    (root / cub_module.ARCHIVE).write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(cub_module, "MD5", hashlib.md5(data[: len(data) // 2]).hexdigest())
    with pytest.raises(DataError) as error:
        load_cub("cub200", root, None, size=32)
    message = _one_line(error)
    assert "cannot unpack" in message and "truncated or corrupt" in message
    assert not (root / FOLDER).exists()
    assert _leftovers(root) == []


def test_mirror_without_cub(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    with pytest.raises(DataError) as error:
        load_cub("cub200", tmp_path / "root", tmp_path / "mirror", size=32)
    assert "CUB_200_2011.tgz not found in data_mirror" in _one_line(error)


# ---------------------------------------------------------------- decoding


def test_bbox_crop_keeps_the_bird(tmp_path: Path) -> None:
    write_fake_cub(tmp_path / "root", greyscale_one=False)
    dataset = load_cub("cub200", tmp_path / "root", None, crop="bbox", size=32)
    for split in (dataset.train, dataset.test):
        for image, label in zip(split.images, split.labels, strict=True):
            colour = torch.tensor(bird_colour(int(label)), dtype=torch.float32)
            mean = image.float().mean(dim=(1, 2))
            assert (mean - colour).abs().max() < 12, (mean, colour)  # no grey background
            centre = image[:, 16, 16].float()
            assert (centre - colour).abs().max() < 12


def test_no_crop_keeps_the_background(tmp_path: Path) -> None:
    write_fake_cub(tmp_path / "root", greyscale_one=False)
    dataset = load_cub("cub200", tmp_path / "root", None, crop="none", size=40)
    assert dataset.train.images.shape == (N_TRAIN, 3, 40, 40)
    assert dataset.test.images.shape == (N_TEST, 3, 40, 40)
    background = torch.tensor(BACKGROUND, dtype=torch.float32)
    corners = dataset.train.images[:, :, 0, 0].float()  # 80x60 -> 53x40 -> centre 40x40
    assert (corners - background).abs().max() < 12


def test_workers_give_identical_tensors(tmp_path: Path) -> None:
    write_fake_cub(tmp_path / "root")
    one = load_cub("cub200", tmp_path / "root", None, size=32, workers=1)
    two = load_cub("cub200", tmp_path / "root", None, size=32, workers=2)
    for a, b in ((one.train, two.train), (one.test, two.test)):
        assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_greyscale_image_becomes_rgb(tmp_path: Path) -> None:
    tree = write_fake_cub(tmp_path / "root")
    first = tree / "images" / (tree / "images.txt").read_text().split()[1]
    assert first.read_bytes()  # image id 1, written greyscale, is the first train image
    image = load_cub("cub200", tmp_path / "root", None, size=32).train.images[0]
    assert image.shape == (3, 32, 32)
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_bad_jpeg_names_the_file(tmp_path: Path) -> None:
    tree = write_fake_cub(tmp_path / "root")
    relpath = (tree / "images.txt").read_text().splitlines()[4].split()[1]
    (tree / "images" / relpath).write_bytes(b"not a jpeg")
    for workers in (1, 2):
        with pytest.raises(DataError) as error:
            load_cub("cub200", tmp_path / "root", None, size=32, workers=workers)
        message = _one_line(error)
        assert message.startswith("cannot decode") and relpath in message


# ---------------------------------------------------------------- broken trees


@pytest.mark.parametrize(
    "missing",
    [
        "images.txt",
        "image_class_labels.txt",
        "train_test_split.txt",
        "bounding_boxes.txt",
        "classes.txt",
        "images",
    ],
)
@pytest.mark.parametrize("where", ["root", "mirror"])
def test_missing_part_of_tree(tmp_path: Path, missing: str, where: str) -> None:
    tree = write_fake_cub(tmp_path / where)
    target = tree / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DataError) as error:
        load_cub("cub200", tmp_path / "root", tmp_path / where if where == "mirror" else None, size=32)
    message = _one_line(error)
    assert message.startswith(f"{missing}") and str(tree) in message and "restore it" in message


def test_missing_image_file(tmp_path: Path) -> None:
    tree = write_fake_cub(tmp_path / "root")
    relpath = (tree / "images.txt").read_text().splitlines()[7].split()[1]
    (tree / "images" / relpath).unlink()
    with pytest.raises(DataError) as error:
        load_cub("cub200", tmp_path / "root", None, size=32)
    message = _one_line(error)
    assert relpath in message and "is missing" in message


def test_inconsistent_ids(tmp_path: Path) -> None:
    tree = write_fake_cub(tmp_path / "root")
    lines = (tree / "bounding_boxes.txt").read_text().splitlines()
    (tree / "bounding_boxes.txt").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(DataError) as error:
        load_cub("cub200", tmp_path / "root", None, size=32)
    message = _one_line(error)
    assert "bounding_boxes.txt lacks image id 18" in message


def test_class_out_of_range(tmp_path: Path) -> None:
    tree = write_fake_cub(tmp_path / "root")
    lines = (tree / "image_class_labels.txt").read_text().splitlines()
    lines[4] = "5 4"  # 3 classes
    (tree / "image_class_labels.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as error:
        load_cub("cub200", tmp_path / "root", None, size=32)
    message = _one_line(error)
    assert "image id 5 has class 4, outside 1..3" in message


def test_unknown_crop(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="valid: bbox, none"):
        load_cub("cub200", tmp_path / "root", None, crop="square")


# ---------------------------------------------------------------- downloads


@pytest.fixture
def server() -> Iterator[tuple[str, ServedFiles]]:
    """The local file server (tests/conftest.py); the tests here serve ``default`` at any path."""
    with file_server() as url_and_served:
        yield url_and_served


def _serve_archive(
    server: tuple[str, ServedFiles], fake_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> ServedFiles:
    url, served = server
    served.default = fake_archive.read_bytes()
    monkeypatch.setattr(cub_module, "URL", f"{url}/records/x/files/{cub_module.ARCHIVE}?download=1")
    return served


def test_download(tmp_path: Path, fake_archive: Path, server, monkeypatch) -> None:
    served = _serve_archive(server, fake_archive, monkeypatch)
    root = tmp_path / "root"
    _check(load_cub("cub200", root, None, size=32))
    assert served.ranges == [None]
    assert (root / cub_module.ARCHIVE).read_bytes() == served.default
    assert _leftovers(root) == []


def test_download_resumes_a_part_file(tmp_path: Path, fake_archive: Path, server, monkeypatch) -> None:
    served = _serve_archive(server, fake_archive, monkeypatch)
    root = tmp_path / "root"
    root.mkdir()
    half = len(served.default) // 2
    (root / (cub_module.ARCHIVE + ".part")).write_bytes(served.default[:half])
    _check(load_cub("cub200", root, None, size=32))
    assert served.ranges == [f"bytes={half}-"]
    assert (root / cub_module.ARCHIVE).read_bytes() == served.default
    assert _leftovers(root) == []


def test_download_restarts_when_range_is_ignored(
    tmp_path: Path, fake_archive: Path, server, monkeypatch
) -> None:
    served = _serve_archive(server, fake_archive, monkeypatch)
    served.honour_range = False
    root = tmp_path / "root"
    root.mkdir()
    (root / (cub_module.ARCHIVE + ".part")).write_bytes(b"stale bytes of another file")
    _check(load_cub("cub200", root, None, size=32))
    assert (root / cub_module.ARCHIVE).read_bytes() == served.default


def test_download_retries_a_dropped_connection(
    tmp_path: Path, fake_archive: Path, server, monkeypatch
) -> None:
    served = _serve_archive(server, fake_archive, monkeypatch)
    served.drop_first_after = 1000
    root = tmp_path / "root"
    _check(load_cub("cub200", root, None, size=32))
    assert served.ranges == [None, "bytes=1000-"]
    assert _leftovers(root) == []


def test_download_with_wrong_md5_leaves_nothing(
    tmp_path: Path, fake_archive: Path, server, monkeypatch
) -> None:
    _serve_archive(server, fake_archive, monkeypatch)
    monkeypatch.setattr(cub_module, "MD5", "0" * 32)
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        load_cub("cub200", root, None, size=32)
    message = _one_line(error)
    assert message.startswith("md5 mismatch for") and "data_mirror" in message
    assert list(root.iterdir()) == []


def test_download_with_wrong_size_leaves_nothing(
    tmp_path: Path, fake_archive: Path, server, monkeypatch
) -> None:
    served = _serve_archive(server, fake_archive, monkeypatch)
    served.default = served.default[:-10]
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        load_cub("cub200", root, None, size=32)
    assert _one_line(error).startswith("size mismatch for")
    assert list(root.iterdir()) == []


def test_unreachable_url(tmp_path: Path, fake_archive: Path) -> None:
    root = tmp_path / "root"
    with pytest.raises(DataError) as error:
        load_cub("cub200", root, None, size=32)
    message = _one_line(error)
    assert message.startswith(f"cannot download {cub_module.ARCHIVE}")
    assert "no network?" in message and "data_mirror" in message
    assert list(root.iterdir()) == []


# ---------------------------------------------------------------- prepare step


def test_prepare_dataset_end_to_end(tmp_path: Path) -> None:
    write_fake_cub(tmp_path / "mirror")
    out = tmp_path / "data" / "tensors.pt"
    source = {"source": "cub", "size": 32}
    prepare_dataset("cub200", source, tmp_path / "data", out, tmp_path / "mirror", workers=2)
    dataset = load_prepared(out)
    assert dataset.name == "cub200" and dataset.num_classes == 3
    assert dataset.train.images.shape == (N_TRAIN, 3, 32, 32)
    assert len(dataset.test) == N_TEST


# ---------------------------------------------------------------- pretrained weights


def _weights_file(folder: Path, state: dict, stem: str = "net", good: bool = True) -> Path:
    """``state`` saved as ``folder/<stem>-<sha256 prefix>.pth`` (a wrong prefix if not good)."""
    folder.mkdir(parents=True, exist_ok=True)
    scratch = folder / "scratch.pth"
    torch.save(state, scratch)
    digest = hashlib.sha256(scratch.read_bytes()).hexdigest()[:8]
    path = folder / f"{stem}-{digest if good else '0badf00d'}.pth"
    scratch.rename(path)
    return path


STATE = {"conv.weight": torch.arange(6.0).reshape(2, 3)}


@pytest.mark.parametrize("sub", ["", "checkpoints"])
def test_weights_from_mirror(tmp_path: Path, sub: str) -> None:
    path = _weights_file(tmp_path / "mirror" / sub, STATE)
    found = fetch_weights(f"{UNREACHABLE}/{path.name}", path.name, tmp_path / "mirror", tmp_path / "cache")
    assert found == path
    assert not (tmp_path / "cache").exists()


def test_weights_from_cache(tmp_path: Path) -> None:
    path = _weights_file(tmp_path / "cache", STATE)
    assert fetch_weights(f"{UNREACHABLE}/{path.name}", path.name, None, tmp_path / "cache") == path


def test_weights_download(tmp_path: Path, server) -> None:
    url, served = server
    path = _weights_file(tmp_path / "elsewhere", STATE)
    served.default = path.read_bytes()
    found = fetch_weights(f"{url}/{path.name}", path.name, None, tmp_path / "cache")
    assert found == tmp_path / "cache" / path.name
    assert torch.equal(load_state_dict_file(found)["conv.weight"], STATE["conv.weight"])


def test_weights_hash_mismatch_in_mirror_is_kept(tmp_path: Path) -> None:
    path = _weights_file(tmp_path / "mirror", STATE, good=False)
    with pytest.raises(DataError) as error:
        fetch_weights(f"{UNREACHABLE}/{path.name}", path.name, tmp_path / "mirror", tmp_path / "cache")
    message = _one_line(error)
    assert message.startswith(f"sha256 mismatch for {path}")
    assert path.is_file()


def test_weights_hash_mismatch_in_cache_is_removed(tmp_path: Path) -> None:
    path = _weights_file(tmp_path / "cache", STATE, good=False)
    with pytest.raises(DataError) as error:
        fetch_weights(f"{UNREACHABLE}/{path.name}", path.name, None, tmp_path / "cache")
    assert "sha256 mismatch" in _one_line(error) and "removed" in str(error.value)
    assert not path.exists()


def test_weights_offline(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    file = "resnet34-b627a593.pth"
    with pytest.raises(WeightsUnavailable) as error:
        fetch_weights(f"{UNREACHABLE}/{file}", file, tmp_path / "mirror", tmp_path / "cache")
    message = _one_line(error)
    assert message.startswith(f"pretrained weights {file} not found in data_mirror")
    assert "cannot be downloaded" in message and "torch hub cache" in message
    assert isinstance(error.value, DataError)
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []


def test_load_state_dict_file_strips_module(tmp_path: Path) -> None:
    plain = tmp_path / "plain.pth"
    torch.save({"module.conv.weight": STATE["conv.weight"], "fc.bias": torch.zeros(2)}, plain)
    assert sorted(load_state_dict_file(plain)) == ["conv.weight", "fc.bias"]
    nested = tmp_path / "nested.pth.tar"
    torch.save({"epoch": 3, "state_dict": {"module.conv.weight": STATE["conv.weight"]}}, nested)
    loaded = load_state_dict_file(nested)
    assert list(loaded) == ["conv.weight"] and torch.equal(loaded["conv.weight"], STATE["conv.weight"])


def test_load_state_dict_file_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(DataError) as error:
        load_state_dict_file(bad)
    assert str(bad) in _one_line(error)
