"""``whitebox prepare-data``: download or copy, verify and convert one base dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(command: str, parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="base dataset name, e.g. cifar10")
    parser.add_argument("--source", required=True, help="the dataset's config entry as JSON")
    parser.add_argument("--root", required=True, help="torchvision root for the raw files")
    parser.add_argument("--out", required=True, help="tensors file to write")
    parser.add_argument("--mirror", default=None, help="local mirror used instead of the network")
    parser.add_argument("--workers", type=int, default=1, help="processes decoding images (CUB)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    from whitebox.data.prepare import prepare_dataset

    prepare_dataset(args.dataset, json.loads(args.source), root=Path(args.root), out=Path(args.out),
                    mirror=Path(args.mirror).expanduser() if args.mirror else None, workers=args.workers)
