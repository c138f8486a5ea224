"""``tinyab data info [PATH]`` and ``tinyab data download [--dir DIR] [--url URL]``."""

from __future__ import annotations

import argparse

from tinyab.cli import example


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="inspect or download Tiny ImageNet", **example("tinyab data download --dir ~/datasets")
    )
    commands = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    info = commands.add_parser(
        "info",
        help="check a dataset image by image and print its counts",
        **example("tinyab data info ~/tiny-imagenet-200.zip"),
    )
    info.add_argument(
        "path",
        nargs="?",
        metavar="PATH",
        help="the .zip or extracted folder (default: $TINYAB_DATA, else the downloaded copy)",
    )
    info.set_defaults(func=cmd_info)

    download = commands.add_parser(
        "download",
        help="download, verify and extract the official archive",
        **example("tinyab data download --dir /data --url https://mirror.example.org/tiny-imagenet-200.zip"),
    )
    download.add_argument("--dir", help="destination folder (default: $TINYAB_HOME, else ~/.cache/tinyab)")
    download.add_argument("--url", help="archive URL (default: the official cs231n URL)")
    download.set_defaults(func=cmd_download)


def cmd_info(args: argparse.Namespace) -> int:
    from tinyab.data import dataset_info, resolve_data_path

    info = dataset_info(resolve_data_path(args.path))
    print(f"dataset           {info.path}")
    print(f"classes           {info.classes}")
    print(f"train images      {info.train_images}")
    print(f"val images        {info.val_images}")
    print(f"grayscale images  {info.grayscale_images} (converted to RGB when loaded)")
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from tinyab.data.download import OFFICIAL_URL, download
    from tinyab.data.locate import tinyab_home

    folder = download(args.dir or tinyab_home(), url=args.url or OFFICIAL_URL)
    print(f"dataset ready at {folder}")
    return 0
