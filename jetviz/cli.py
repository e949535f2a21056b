"""``python -m jetviz <command>``: the command line over the same functions the app uses.

Each module that offers commands has a ``register(subparsers)`` function adding its subcommands, each with
``set_defaults(func=...)`` where ``func(args) -> int`` is the exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module → the commands it registers (imported lazily so `--help` stays fast and one broken extra
# dependency does not take down unrelated commands)
COMMAND_MODULES = (
    "jetviz.simulate",  # simulate, merge
    "jetviz.training",  # train
    "jetviz.sampling",  # sample, merge-samples
    "jetviz.classifier",  # train-classifier
    "jetviz.evaluate",  # evaluate, bench
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m jetviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # module not written yet
                continue
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
