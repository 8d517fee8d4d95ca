"""Data sources yielding ``{"image": f32 [B, H, W, C] in [-1, 1], "label": i32 [B]}`` batches.

`load_source` picks a loader by ``data.source``; every loader returns an in-memory `ArraySource`
whose ``batch(step, batch_size, seed)`` is a pure function of its arguments. `shard_batch` puts a
global batch on the 1-D ``"batch"`` mesh.

Imports go one way: this package imports the loader modules, which import only
`lwgen.data.source`; the distillation loader gets `load_source` (for the real data behind a
distillation set) as an argument instead of importing it.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

from lwgen.data.captions import load_caption_source
from lwgen.data.digits import load_digits_source
from lwgen.data.distill_set import load_distill_source, real_data_config
from lwgen.data.folder import load_folder_source, read_image
from lwgen.data.idx import load_fashion_mnist_idx
from lwgen.data.photo_crops import load_photo_crops
from lwgen.data.source import ArraySource, check_batch_divisible, check_split, shard_batch
from lwgen.data.sr_pairs import load_sr_pairs
from lwgen.data.tfds_source import TFDS_NAMES, load_tfds_source
from lwgen.data.unpaired import load_cycle_gan_tfds, load_fashion_unpaired, load_unpaired_folder
from lwgen.errors import ConfigError

__all__ = [
    "ArraySource",
    "LOADERS",
    "check_batch_divisible",
    "load_source",
    "real_data_config",
    "shard_batch",
]


def _load_distill(data_config: Mapping, split: str) -> ArraySource:
    """`load_distill_source` with `load_source` loading the set's real data."""
    return load_distill_source(data_config, split, load_real=load_source)


def _load_sr_pairs(data_config: Mapping, split: str):
    """`load_sr_pairs` with `load_source` loading a data set's own images as its pool."""
    return load_sr_pairs(data_config, split, load_source=load_source)


def _load_captions(data_config: Mapping, split: str):
    """`load_caption_source` with `load_source` loading the base images."""
    return load_caption_source(data_config, split, load_base=load_source, load_image=read_image)


LOADERS = {
    "captions": _load_captions,
    "digits": load_digits_source,
    "distill": _load_distill,
    "fashion_mnist_idx": load_fashion_mnist_idx,
    "folder": load_folder_source,
    "sr_pairs": _load_sr_pairs,
    "photos": load_photo_crops,
    **{name: functools.partial(load_tfds_source, name) for name in TFDS_NAMES},
    "fashion_unpaired": load_fashion_unpaired,
    "unpaired_folder": load_unpaired_folder,
    "cycle_gan_tfds": load_cycle_gan_tfds,
}


def load_source(data_config: Mapping, split: str) -> ArraySource:
    """Loads one split of the data set named by ``data_config.source``.

    Args:
      data_config: the config's ``data`` group (``source``, ``image_size``, ``channels``,
        ``data_dir`` (the TFDS cache, or the IDX folder of ``"fashion_mnist_idx"``), ``path``,
        ``heldout_fraction``; for ``"distill"`` also ``real_source``, ``real_path``).
      split: ``"train"`` or ``"heldout"``.

    Returns:
      An `ArraySource` with uint8 ``[N, image_size, image_size, channels]`` images (an
      ``lwgen.data.unpaired.UnpairedSource`` for the two-domain sources).

    Raises:
      ConfigError: on an unknown source (listing the valid ones) or a bad config entry.
      MissingFileError: if a folder, IDX folder or distillation set path, or a file in it, does
        not exist.
      DataError: on unreadable, corrupt or incomplete data (the loader's message names it).
      ValueError: on an unknown split.
    """
    source = data_config.get("source", None)
    if source not in LOADERS:
        raise ConfigError(f"data.source must be one of {sorted(LOADERS)}, got {source!r}")
    check_split(split)
    return LOADERS[source](data_config, split)
