"""What every benchmark shares: where the mini Tiny ImageNet archive is."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_DATA = (
    Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tiny-imagenet-200-mini.zip"
)


def add_data_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default=os.environ.get("TINYAB_TEST_DATA", str(DEFAULT_DATA)),
        help="the mini Tiny ImageNet zip (default: $TINYAB_TEST_DATA, else ../shared/data/ next to the repo)",
    )
