"""Code identity by content (whitebox.code_identity): what changes a digest and what does not."""

from __future__ import annotations

import shutil

import pytest

from whitebox import code_identity
from whitebox.code_identity import (
    _analyse,
    augmentation_modules,
    closure,
    code_digest,
    imported_modules,
    model_modules,
    run_modules,
)

SOURCE = b'''"""A module."""

import argparse


def configure(parser):
    """Options."""
    parser.add_argument("--n", type=int, help="how many")  # a comment
    return parser
'''


def digest(source: bytes) -> str:
    return _analyse(source)["digest"]


def test_prose_and_formatting_do_not_change_the_digest():
    assert digest(SOURCE.replace(b"A module.", b"Another docstring.")) == digest(SOURCE)
    assert digest(SOURCE.replace(b"# a comment", b"")) == digest(SOURCE)
    assert digest(SOURCE.replace(b'help="how many"', b'help="how many times"')) == digest(SOURCE)
    assert digest(SOURCE.replace(b"type=int, ", b"type=int,   ")) == digest(SOURCE)


def test_code_changes_the_digest():
    assert digest(SOURCE.replace(b"type=int", b"type=float")) != digest(SOURCE)
    assert digest(SOURCE.replace(b"return parser", b"return None")) != digest(SOURCE)


def test_imports_inside_functions_count_and_the_closure_follows_them():
    # cli/train.py imports the training loop inside run(); the loop imports the hooks.
    assert "whitebox.training.loop" in imported_modules("whitebox.cli.train")
    assert "whitebox.training.hooks" in closure(["whitebox.cli.train"])
    assert "whitebox.training.loop" not in closure(["whitebox.cli.figures"])


def test_a_model_digest_covers_the_module_of_its_model_and_of_its_backbone():
    # INH on the Directional backbone runs both modules (directional lives in prototype_cifar).
    assert model_modules("inh", {"backbone": "directional"}) == [
        "whitebox.models.hashing", "whitebox.models.prototype_cifar"]
    assert model_modules("inh") == ["whitebox.models.hashing"]
    train = ["whitebox.cli.train"]
    assert code_digest(train + model_modules("inh")) != code_digest(train + model_modules("gumbel2"))
    assert code_digest(train) == code_digest(list(reversed(train + train)))


TRAIN = ["whitebox.__main__", "whitebox.cli.train"]  # what the train rule's digest starts from


def _forget():
    for cached in (code_identity._summary, code_identity._digest, code_identity.registered,
                   code_identity._disk_cache):
        cached.cache_clear()


@pytest.fixture
def source_copy(tmp_path, monkeypatch):
    """A copy of src/whitebox that code_identity reads instead, to edit; the caches forgotten
    before and after."""
    root = tmp_path / "whitebox"
    shutil.copytree(code_identity.SOURCE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(code_identity, "SOURCE_ROOT", root)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    _forget()
    yield root
    _forget()


def edit(path):
    path.write_text(path.read_text() + "\n_EDITED = True\n")
    _forget()


def test_augmentations_are_not_in_the_training_loops_closure():
    # augment_batch imports them by name; a training job's digest adds its own (run_modules).
    train = closure(TRAIN)
    assert "whitebox.augmentations.registry" in train
    assert not {"whitebox.augmentations.basic", "whitebox.augmentations.protopnet"} & train
    assert augmentation_modules(["hflip", "translate"]) == ["whitebox.augmentations.basic"]
    assert augmentation_modules(["protopnet", "hflip"]) == [
        "whitebox.augmentations.basic", "whitebox.augmentations.protopnet"]
    assert "whitebox.augmentations.protopnet" in run_modules(TRAIN, "inh", {}, ["protopnet"])
    # A command that does not train (no augment_batch) never adds them.
    evaluate = ["whitebox.__main__", "whitebox.cli.evaluate"]
    assert run_modules(evaluate, "inh", {}, ["protopnet"]) == evaluate + model_modules("inh")


def test_editing_an_augmentation_retrains_only_the_experiments_that_use_it(source_copy):
    runs = {"protopnet": ["protopnet"], "hflip": ["hflip"], "hflip_translate": ["hflip", "translate"]}

    def digests():
        return {name: code_digest(run_modules(TRAIN, "inh", {}, augment)) for name, augment in runs.items()}

    before = digests()  # hflip and translate share a module (their specs differ, not their code)
    assert before["protopnet"] != before["hflip"] == before["hflip_translate"]
    edit(source_copy / "augmentations" / "protopnet.py")
    after = digests()
    assert after["protopnet"] != before["protopnet"]
    assert after["hflip"] == before["hflip"] and after["hflip_translate"] == before["hflip_translate"]
    edit(source_copy / "augmentations" / "basic.py")
    again = digests()
    assert again["hflip"] != after["hflip"] and again["hflip_translate"] != after["hflip_translate"]
    assert again["protopnet"] == after["protopnet"]
    edit(source_copy / "augmentations" / "registry.py")  # the dispatcher: every training
    assert all(digest != again[name] for name, digest in digests().items())
