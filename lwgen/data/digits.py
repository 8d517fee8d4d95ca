"""The scikit-learn handwritten digits (1,797 8×8 images, 10 classes), upsampled for the demo.

The images ship with scikit-learn (UCI "Optical Recognition of Handwritten Digits", Alpaydin &
Kaynak 1998), so this source needs no download. Values 0..16 are mapped to 0..255, resized with
Pillow (bicubic) to ``data.image_size`` and split into fixed stratified train/held-out parts.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.datasets import load_digits

from lwgen.data.source import ArraySource, convert_images, heldout_fraction, stratified_split

DIGITS_MAX_VALUE = 16.0


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1,797 digits at their native size.

    Returns:
      ``(images, labels)``: uint8 ``[1797, 8, 8, 1]`` in 0..255 and int32 ``[1797]`` in 0..9.
    """
    digits = load_digits()
    images = np.round(digits.images * (255.0 / DIGITS_MAX_VALUE)).astype(np.uint8)
    return images[..., None], digits.target.astype(np.int32)


def load_digits_source(data_config: Mapping, split: str) -> ArraySource:
    """One split of the digits, resized to ``data_config.image_size``.

    Args:
      data_config: needs ``image_size`` and ``channels`` (1, or 3 to repeat the gray channel);
        optional ``heldout_fraction`` (default 0.2).
      split: ``"train"`` or ``"heldout"`` (fixed stratified split, independent of the training
        seed).

    Returns:
      An `ArraySource` with uint8 ``[N, image_size, image_size, channels]`` images; N is 1,437 for
      "train" and 360 for "heldout" at the default fraction.

    Raises:
      ValueError: on an unknown split.
      ConfigError: on a bad ``heldout_fraction`` or ``channels``.
    """
    images, labels = digits_images()
    idx = stratified_split(labels, heldout_fraction(data_config), split)
    resized = convert_images(images[idx], int(data_config.image_size), int(data_config.channels))
    return ArraySource(resized, labels[idx], 10, [str(d) for d in range(10)])
