"""User errors: mistakes in what a user asked for (a config value, a path, a bundle, flags).

Command-line tools (``lwgen.cli``) print these as one line and exit with code 2. Every other
exception (an XLA runtime error, a bug in lwgen) keeps its traceback. Each class also derives from
the built-in exception that fits, so ``except ValueError`` keeps working for library users.
"""

from __future__ import annotations


class LwgenError(Exception):
    """Base class of every user error; its message names the thing at fault and what was wanted."""


class ConfigError(LwgenError, ValueError):
    """A config entry is missing, unknown, of the wrong type or inconsistent with another."""


class DataError(LwgenError, ValueError):
    """A data set, image file or batch is missing, corrupt or of the wrong shape."""


class ExportError(LwgenError, ValueError):
    """Export options are bad, conversion failed, or the converted model failed verification."""


class BundleError(LwgenError, ValueError):
    """A bundle's ``bundle.json`` or files are missing, corrupt, or of an unsupported format."""


class MissingFileError(LwgenError, FileNotFoundError):
    """A path the user named (a workdir, a checkpoint, a bundle, a data folder) does not exist."""


class DivergedError(LwgenError, FloatingPointError):
    """Training produced a non-finite loss; the message names the last good checkpoint."""
