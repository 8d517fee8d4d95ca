"""Atomic file writes and sha256 digests: the one place lwgen writes files and hashes them.

Every write goes to a temporary file in the target's folder and is renamed into place
(``os.replace``), so a reader sees either the old file or the complete new one, never a torn
write, and an interrupted write leaves the old file untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from typing import IO, Any

FILE_MODE = 0o644  # mkstemp makes 0o600; lwgen's outputs are meant to be shared and copied


def sha256_hex(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 digest of the file at ``path``, read in chunks.

    Raises:
      FileNotFoundError: if ``path`` does not exist.
    """
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Calls ``write(f)`` on a temporary binary file next to ``path``, then renames it to ``path``.

    The folder is created if needed. On any error the temporary file is removed and an existing
    ``path`` is left as it was.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically (see `atomic_write`)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes UTF-8 ``text`` to ``path`` atomically (see `atomic_write`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON (no NaN/inf allowed) to ``path`` atomically.

    Raises:
      ValueError: if ``obj`` holds a NaN or an infinity.
      TypeError: if ``obj`` is not JSON-serialisable.
    """
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")
