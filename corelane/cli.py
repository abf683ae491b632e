"""The ``corelane`` command: parses arguments and hands them to one command module.

Each command lives in ``corelane/commands/<name>.py`` and offers ``add_arguments(parser)`` and
``run(args) -> int``. Commands are imported only when chosen, so ``corelane images`` does not pay
for Flask and ``corelane serve`` does not pay for pygame.
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="corelane", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        module = _load(name)
        if module is None:
            continue
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(cmd)  # type: ignore[attr-defined]
        cmd.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
