"""The ``tinyab`` command: each sub-command is a thin layer over a library function.

Every command group lives in its own module with a ``register(subparsers)`` function that adds its
parsers and sets ``func`` to a handler taking the parsed arguments and returning an exit code.
A :class:`~tinyab.errors.UserError` becomes one line on stderr and exit code 2. When the reader of
stdout goes away (``tinyab report ... | head``) the command stops quietly with exit code 141, the
128 + SIGPIPE that a shell's ``pipefail`` sees from any other Unix tool cut off the same way.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Any

from tinyab import __version__
from tinyab.errors import UserError

COMMAND_MODULES = ["data", "train", "search", "report", "ablate", "dashboard"]
EXIT_BROKEN_PIPE = 141


def example(command: str) -> dict[str, Any]:
    """``add_parser`` keywords that end a command's ``--help`` with one example, kept as written."""
    return {"epilog": f"example:\n  {command}", "formatter_class": argparse.RawDescriptionHelpFormatter}


def add_set_argument(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable), parsed by :func:`tinyab.config.parse_overrides`."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyab",
        description="Honest A/B comparisons for image classifiers trained from scratch on Tiny ImageNet.",
    )
    parser.add_argument("--version", action="version", version=f"tinyab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tinyab.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # inside the try: a reader gone before the exit flush is a broken pipe too
        return code
    except UserError as err:
        print(f"tinyab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tinyab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout's reader is gone; send what is still buffered to devnull so the exit flush is silent
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
