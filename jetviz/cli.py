"""``python -m jetviz <command>``: the command line over the same functions the app uses.

Each module that offers commands has a ``register(subparsers)`` function adding its subcommands, each with
``set_defaults(func=...)`` where ``func(args) -> int`` is the exit code. Only the module of the command being
run is imported (``simulate`` never loads torch); ``--help`` imports them all.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command → the module that registers it
COMMANDS = {
    "simulate": "jetviz.simulate",
    "merge": "jetviz.simulate",
    "train": "jetviz.training",
    "sample": "jetviz.sampling",
    "merge-samples": "jetviz.sampling",
    "train-classifier": "jetviz.classifier",
    "evaluate": "jetviz.evaluate",
    "bench": "jetviz.evaluate",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jetviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # module not written yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    args.command_line = " ".join(["python -m jetviz", *argv])  # recorded in model cards
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as e:  # user input: a plain message, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
