"""What long-running entry points print: a progress bar and warnings on the console, every log
line (absl, orbax, lwgen) in a log file of the workdir."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from absl import flags as absl_flags
from absl import logging as absl_logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def echo_to_stderr() -> bool:
    """Whether the user asked absl for every log line on stderr (``--alsologtostderr``)."""
    flags = absl_flags.FLAGS
    return flags.is_parsed() and (flags.alsologtostderr or flags.logtostderr)


def _logging_to(path: str) -> bool:
    return any(
        isinstance(h, logging.FileHandler) and h.baseFilename == path
        for h in logging.getLogger().handlers
    )


@contextlib.contextmanager
def log_to_file(path: str, write: bool = True) -> Iterator[None]:
    """While the body runs, log records of level INFO and above go to ``path`` (if ``write``;
    nested uses for the same file add nothing) and only warnings reach the console (unless
    ``--alsologtostderr``). Levels and handlers are restored afterwards."""
    path = os.path.abspath(path)
    root = logging.getLogger()
    consoles = [h for h in root.handlers if not isinstance(h, logging.FileHandler)]
    consoles.append(absl_logging.get_absl_handler())
    saved = root.level, [h.level for h in consoles]
    if not echo_to_stderr():
        for console in consoles:
            console.setLevel(max(console.level, logging.WARNING))
    handler = None
    if write and not _logging_to(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield
    finally:
        if handler:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(saved[0])
        for console, level in zip(consoles, saved[1], strict=True):
            console.setLevel(level)
