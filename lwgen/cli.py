"""Command-line plumbing shared by the ``launch/``, ``export/`` and ``bench/`` entry points.

Every tool reports a bad flag, a stray argument, an unknown ``--config.KEY`` or a user error
(`lwgen.errors.LwgenError`: a wrong path, a corrupt bundle, a bad config value) as one line
``TOOL: error: MESSAGE`` on stderr and exit code 2, without a traceback. Any other exception (a
bug, an XLA runtime error) is not caught and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from absl import app, flags
from ml_collections import config_flags

from lwgen.errors import LwgenError


def fail(tool: str, message: object) -> NoReturn:
    """Prints ``TOOL: error: MESSAGE`` (whitespace runs, newlines included, made one space) on
    stderr and exits with code 2."""
    print(f"{tool}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(2)


def missing_config_file() -> str | None:
    """A message naming the first ``DEFINE_config_file`` flag given a file that does not exist
    (ml_collections defers that error to the first use of the config), else None."""
    for name in list(flags.FLAGS):
        flag = flags.FLAGS[name]
        if not flag.present:
            continue
        try:
            path = config_flags.get_config_filename(flag).split(":")[0]
        except TypeError:  # not a config flag
            continue
        if not os.path.isfile(path):
            return f"--{name}: config file {path!r} not found"
    return None


def run(tool: str, main: Callable[[], None]) -> None:
    """``absl.app.run`` for ``main()`` with one-line user errors and exit code 2.

    Args:
      tool: the name printed before each error line.
      main: the tool's body; it reads the parsed absl flags. A `lwgen.errors.LwgenError` it
        raises becomes one line and exit code 2; any other exception propagates with its
        traceback.
    """

    def parse(argv: list[str]) -> list[str]:
        try:
            return flags.FLAGS(argv)
        except flags.Error as e:
            fail(tool, e)
        except (AttributeError, KeyError) as e:  # ml_collections: a --config.KEY it lacks
            fail(tool, f"unknown config key in the command line: {e}")

    def checked_main(argv: list[str]) -> None:
        if len(argv) > 1:
            fail(tool, f"unexpected arguments {argv[1:]}")
        missing = missing_config_file()
        if missing:
            fail(tool, missing)
        try:
            main()
        except LwgenError as e:
            fail(tool, e)

    app.run(checked_main, flags_parser=parse)
