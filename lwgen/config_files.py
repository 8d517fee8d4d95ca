"""Experiment configs from Python: ``configs/<exp>.py`` plus overrides in one call.

`load_config` gives a notebook, a test or a script the config a launcher gets from
``--config=PATH[:ARG] --config.KEY=VALUE`` (``ml_collections.config_flags``), without absl flags.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import re
import sys
import types
from collections.abc import Mapping
from typing import Any

import ml_collections

from lwgen.errors import ConfigError, MissingFileError


def load_config(path: str, overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """Loads a config file, calls its ``get_config()`` and applies ``overrides``.

    As with ``config_flags.DEFINE_config_file``, everything after the first ``:`` of ``path`` is
    passed to ``get_config`` as its one string argument, and the result is locked: existing
    entries can change, new ones cannot be added.

    Args:
      path: ``FILE`` or ``FILE:ARG``, ``FILE`` a Python file (relative to the working
        directory or absolute) defining ``get_config()`` that returns a ``ConfigDict``.
      overrides: dotted keys to values, e.g. ``{"num_train_steps": 10, "data.path": "runs/set"}``;
        each key must already exist in the config.

    Returns:
      The locked ``ml_collections.ConfigDict``.

    Raises:
      MissingFileError: if ``FILE`` does not exist.
      ConfigError: if the file has no ``get_config`` function or it returns something other
        than a ``ConfigDict``, or an override names an entry the config lacks (the message
        names it) or has a value of the wrong type.
    """
    file, *arg = path.split(":", 1)
    get_config = getattr(_load_module(file), "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"config file {file!r} defines no get_config() function")
    config = get_config(*arg)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"{path}: get_config() must return an ml_collections.ConfigDict, got "
            f"{type(config).__name__}"
        )
    for key, value in (overrides or {}).items():
        _override(config, key, value)
    config.lock()
    return config


def _load_module(file: str) -> types.ModuleType:
    """Executes the Python file ``file`` as a fresh module registered in ``sys.modules``.

    Raises:
      MissingFileError: if ``file`` is not a file.
    """
    if not os.path.isfile(file):
        raise MissingFileError(f"config file {file!r} does not exist")
    stem = os.path.splitext(os.path.basename(file))[0]
    name = "lwgen_config_" + re.sub(r"\W", "_", stem)
    loader = importlib.machinery.SourceFileLoader(name, file)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    sys.modules[name] = module  # like config_flags; dataclasses in the file look their module up
    loader.exec_module(module)
    return module


def _override(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
    """Sets the existing entry ``config.<key>`` (dotted) to ``value``.

    Raises:
      ConfigError: naming the first missing part of ``key`` or a value on its way, or on a
        value of the wrong type.
    """
    parts = key.split(".")
    node = config
    for depth, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict):
            parent = ".".join(parts[:depth])
            raise ConfigError(f"override {key!r}: config entry {parent!r} is not a group")
        if part not in node:
            missing = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {key!r}: the config has no entry {missing!r}")
        if depth + 1 < len(parts):
            node = node[part]
    try:
        node[parts[-1]] = value
    except TypeError as e:
        raise ConfigError(f"override {key!r}: {e}") from e
