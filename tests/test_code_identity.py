"""Code identity by content (whitebox.code_identity): what changes a digest and what does not."""

from __future__ import annotations

from whitebox.code_identity import _analyse, closure, code_digest, imported_modules, model_modules

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
