"""The ``corelane`` command: parses arguments and hands them to one command module.

Each command lives in ``corelane/commands/<name>.py`` and offers ``add_arguments(parser)`` and
``run(args) -> int``. Every command module is imported to build the parser, but each imports its
heavy libraries (gunicorn and Flask, Celery, Pillow, pygame) only inside ``run``, so
``corelane images`` does not pay for Flask and ``corelane serve`` does not pay for pygame.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "serve": "start the image web service (Flask + Socket.IO)",
    "worker": "run a Celery worker for the scaled-out service",
    "images": "process image files in a batch, with a progress bar",
    "demo": "run a demo (pathfinding: a Pygame frame loop offloading A* to workers)",
}


def _load(name: str) -> object | None:
    try:
        return importlib.import_module(f"corelane.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"corelane.commands.{name}":
            return None
        raise


DESCRIPTION = "CPU-bound work on every core: an image web service and batch tools."
EPILOG = """examples:
  corelane serve                          open http://127.0.0.1:8000 and drop images
  corelane images photos/ --out thumbs    resize a folder on all cores
  corelane COMMAND --help                 the options of one command, with their defaults

docs: README.md and docs/ in the source tree"""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show an option's default, unless it has none or its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action) or text


def build_parser() -> argparse.ArgumentParser:
    from corelane import __version__

    parser = argparse.ArgumentParser(prog="corelane", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"corelane {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = _load(name)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text,
                             formatter_class=HelpFormatter)
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
