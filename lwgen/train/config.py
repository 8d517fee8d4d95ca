"""Checks that an experiment config is complete and consistent before any work starts.

The core checks what every family needs (seed, steps, batch, data, logging and checkpoint
cadence); the family's ``validate_config`` checks the rest (its networks, losses, optimizers).
"""

from __future__ import annotations

import ml_collections

from lwgen.errors import ConfigError
from lwgen.families.registry import get_family

REQUIRED = {
    "": ("seed", "num_train_steps", "batch_size", "model", "data", "train", "export"),
    "model": ("family",),
    "data": ("source",),
    "train": ("log_every", "checkpoint_every", "keep_checkpoints", "sample_every"),
}
POSITIVE = {
    "": ("num_train_steps", "batch_size"),
    "train": ("log_every", "checkpoint_every", "sample_every", "keep_checkpoints"),
}


def _path(group: str, key: str) -> str:
    return ".".join(filter(None, [group, key]))


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Checks the core's entries, then the family's (``Family.validate_config``).

    Raises:
      ConfigError: naming the first missing, non-positive or inconsistent entry, or an unknown
        ``model.family``.
    """
    for group, keys in REQUIRED.items():
        node = config[group] if group else config
        for key in keys:
            if key not in node:
                raise ConfigError(f"config is missing {_path(group, key)}")
    for group, keys in POSITIVE.items():
        node = config[group] if group else config
        for key in keys:
            if int(node[key]) <= 0:
                raise ConfigError(f"config.{_path(group, key)} must be positive, got {node[key]}")
    get_family(config.model.family).validate_config(config)
