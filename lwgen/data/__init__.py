"""Data sources yielding ``{"image": f32 [B, H, W, C] in [-1, 1], "label": i32 [B]}`` batches.

`load_source` picks a loader by ``data.source``; every loader returns an in-memory `ArraySource`
whose ``batch(step, batch_size, seed)`` is a pure function of its arguments. `shard_batch` puts a
global batch on the 1-D ``"batch"`` mesh.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from lwgen.data.digits import load_digits_source
from lwgen.data.distill_set import load_distill_source
from lwgen.data.folder import load_folder_source
from lwgen.data.source import ArraySource, check_batch_divisible, check_split, shard_batch
from lwgen.data.tfds_source import TFDS_NAMES, load_tfds_source

LOADERS = {
    "digits": load_digits_source,
    "distill": load_distill_source,
    "folder": load_folder_source,
    **{name: functools.partial(load_tfds_source, name) for name in TFDS_NAMES},
}

__all__ = ["ArraySource", "LOADERS", "check_batch_divisible", "load_source", "shard_batch"]


def load_source(data_config: Mapping, split: str) -> ArraySource:
    """Loads one split of the data set named by ``data_config.source``.

    Args:
      data_config: the config's ``data`` group (``source``, ``image_size``, ``channels``,
        ``data_dir``, ``path``, ``heldout_fraction``).
      split: ``"train"`` or ``"heldout"``.

    Returns:
      An `ArraySource` with uint8 ``[N, image_size, image_size, channels]`` images.

    Raises:
      ValueError: on an unknown source (listing the valid ones) or split, or a loader's error.
      FileNotFoundError: if a folder source's path does not exist.
    """
    source = data_config.get("source", None)
    if source not in LOADERS:
        raise ValueError(f"data.source must be one of {sorted(LOADERS)}, got {source!r}")
    check_split(split)
    return LOADERS[source](data_config, split)
