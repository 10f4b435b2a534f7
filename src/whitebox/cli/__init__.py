"""The commands the Snakemake rules call: ``python -m whitebox <command> --help``.

Every rule runs one of these with explicit paths, so anything the DAG does can be rerun by
hand. This module only dispatches: each command lives in the module ``COMMANDS`` names and is
imported only when it runs, so a command that does not train never loads the training stack
(and the digest of the code a command runs, ``whitebox.code_identity``, covers only its own
module's imports). Under Snakemake's local executor a warm worker process runs the commands
(``whitebox.worker``); anywhere else, and whenever the worker is unavailable, they run here.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NamedTuple

from whitebox.errors import UserError


class Command(NamedTuple):
    """Where a command is defined and its one-line help (``help=``: prose, which the code
    digests leave out, so rewording it reruns nothing)."""

    module: str
    help: str


COMMANDS: dict[str, Command] = {
    "prepare-data": Command("whitebox.cli.data", help="download/verify a base dataset, save tensors"),
    "train": Command("whitebox.cli.train", help="train one experiment for one seed"),
    "evaluate": Command("whitebox.cli.evaluate", help="an extra evaluation of a trained model -> JSON"),
    "gradient-metrics": Command("whitebox.cli.evaluate",
                                help="alignment, specificity, noise stability, sanity checks -> JSON"),
    "figure": Command("whitebox.cli.figures",
                      help="draw one figure of a trained model (whitebox figure KIND)"),
    "compare": Command("whitebox.cli.compare",
                       help="draw one figure across experiments (whitebox compare KIND)"),
    "paper": Command("whitebox.cli.paper", help="render paper templates from result files"),
    "summary": Command("whitebox.cli.paper", help="experiments and claims tables as CSV files"),
}


def command_module(command: str) -> str:
    """The module that runs ``command`` (what its code digest starts from)."""
    return COMMANDS[command].module


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``whitebox`` command line; only ``command``'s options are filled in (all commands'
    when None, for the full help)."""
    parser = argparse.ArgumentParser(prog="whitebox", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            importlib.import_module(module).configure(name, sub)
    return parser


def _storage_error(error: OSError) -> str | None:
    """One line for a full disk, exceeded quota or unwritable directory (naming the path), else
    None: other OSErrors are not the user's storage and keep their traceback."""
    import errno

    path = error.filename if error.filename is not None else "an output file"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason = "no space left on device" if error.errno == errno.ENOSPC else "disk quota exceeded"
        return f"cannot write {path}: {reason}; free some space or write elsewhere, then rerun"
    if error.errno == errno.EROFS:
        return (f"cannot write {path}: read-only file system, the directory is not writable; "
                "make it writable or write elsewhere")
    if error.errno in (errno.EACCES, errno.EPERM):
        return f"cannot access {path}: permission denied; check the permissions of it and its directory"
    return None


def run_here(argv: list[str]) -> int:
    """Parse ``argv`` and run its command in this process; user errors (also a full disk or an
    unwritable directory) end with one line on stderr and exit status 1."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        args.run(args)
    except UserError as error:
        print(f"whitebox {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        message = _storage_error(error)
        if message is None:
            raise
        print(f"whitebox {args.command}: error: {message}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one command: in the warm worker when the workflow started one, else here."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if os.environ.get("WHITEBOX_WORKER"):  # the workflow started one (whitebox.worker)
        from whitebox import worker

        where = worker.address()
        status = worker.run_remote(where, argv) if where else None
        if status is not None:
            return status
    return run_here(argv)
