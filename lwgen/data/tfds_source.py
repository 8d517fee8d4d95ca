"""TFDS image classification sets (MNIST, Fashion-MNIST, CIFAR-10) loaded whole into memory.

``tensorflow_datasets`` is imported inside the loader, so importing ``lwgen.data`` does not pull in
TensorFlow. "train" maps to the TFDS ``train`` split and "heldout" to ``test``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lwgen.data.source import ArraySource, check_split, convert_images

TFDS_NAMES = ("mnist", "fashion_mnist", "cifar10")
TFDS_SPLITS = {"train": "train", "heldout": "test"}
READ_CHUNK = 4096


def load_tfds_source(name: str, data_config: Mapping, split: str) -> ArraySource:
    """One split of a TFDS data set, converted to ``data_config.image_size`` and ``channels``.

    Args:
      name: one of ``TFDS_NAMES``.
      data_config: needs ``image_size`` and ``channels``; optional ``data_dir`` (TFDS cache;
        ``None`` uses the TFDS default).
      split: ``"train"`` (TFDS ``train``) or ``"heldout"`` (TFDS ``test``).

    Returns:
      An `ArraySource` with uint8 ``[N, image_size, image_size, channels]`` images and the
      data set's class names.

    Raises:
      ValueError: on an unknown name or split.
      ConfigError: on a bad ``channels``.
    """
    if name not in TFDS_NAMES:
        raise ValueError(f"TFDS source must be one of {TFDS_NAMES}, got {name!r}")
    check_split(split)
    import tensorflow_datasets as tfds

    ds, info = tfds.load(
        name,
        split=TFDS_SPLITS[split],
        data_dir=data_config.get("data_dir", None),
        as_supervised=True,
        with_info=True,
    )
    chunks = list(tfds.as_numpy(ds.batch(READ_CHUNK)))
    images = np.concatenate([chunk[0] for chunk in chunks]).astype(np.uint8)
    labels = np.concatenate([chunk[1] for chunk in chunks]).astype(np.int32)
    label_feature = info.features["label"]
    images = convert_images(images, int(data_config.image_size), int(data_config.channels))
    return ArraySource(images, labels, label_feature.num_classes, list(label_feature.names))
