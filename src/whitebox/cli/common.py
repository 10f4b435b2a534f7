"""Options several commands share."""

from __future__ import annotations

import argparse


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")


def use_threads(threads: int) -> None:
    """Limit torch to ``threads`` CPU threads (0 leaves its default)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
