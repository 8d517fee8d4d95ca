"""Image folders: ``data.path/<class_name>/<image files>``, one sub-folder per class.

Class names are the sorted sub-folder names. Every file with an image extension is decoded with
Pillow, converted to grayscale or RGB and resized (bicubic, aspect ratio not kept). The held-out
split is a fixed stratified fraction, as for the digits.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from PIL import Image

from lwgen.data.source import ArraySource, convert_image, heldout_fraction, stratified_split
from lwgen.errors import ConfigError, DataError, MissingFileError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def list_image_files(path: str) -> tuple[list[str], list[str], np.ndarray]:
    """Lists the class folders under ``path`` and the image files in each.

    Args:
      path: a directory with one sub-folder per class; hidden entries are ignored.

    Returns:
      ``(class_names, files, labels)``: sorted class folder names, the image paths (sorted within
      each class) and int32 ``[len(files)]`` labels.

    Raises:
      MissingFileError: if ``path`` is not a directory.
      DataError: if there is no class folder or a class folder holds no image.
    """
    if not os.path.isdir(path):
        raise MissingFileError(f"data.path {path!r} is not a directory of class folders")
    class_names = sorted(
        entry.name for entry in os.scandir(path) if entry.is_dir() and entry.name[0] != "."
    )
    if not class_names:
        raise DataError(f"data.path {path!r} has no class sub-folders")
    files, labels = [], []
    for label, name in enumerate(class_names):
        folder = os.path.join(path, name)
        images = sorted(
            f for f in os.listdir(folder) if f[0] != "." and f.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not images:
            raise DataError(
                f"class folder {folder!r} has no images with extension {IMAGE_EXTENSIONS}"
            )
        files += [os.path.join(folder, f) for f in images]
        labels += [label] * len(images)
    return class_names, files, np.asarray(labels, np.int32)


def read_image(file: str, image_size: int, channels: int, convert=convert_image) -> np.ndarray:
    """Decodes one image file to uint8 ``[image_size, image_size, channels]``.

    ``convert(image, image_size, channels)`` sizes the decoded Pillow image (default: a resize
    that does not keep the aspect ratio, ``lwgen.data.source.convert_image``).

    Raises:
      DataError: naming ``file`` if Pillow cannot read or decode it.
      ConfigError: if ``channels`` is not 1 or 3.
    """
    try:
        with Image.open(file) as image:
            image.load()
            return convert(image, image_size, channels)
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {file!r}: {e}") from e


def load_folder_source(data_config: Mapping, split: str) -> ArraySource:
    """One split of an image folder.

    Args:
      data_config: needs ``path``, ``image_size`` and ``channels`` (1 → L, 3 → RGB); optional
        ``heldout_fraction`` (default 0.2).
      split: ``"train"`` or ``"heldout"``.

    Returns:
      An `ArraySource` with uint8 ``[N, image_size, image_size, channels]`` images.

    Raises:
      ConfigError: if ``path`` is unset, or ``heldout_fraction`` or ``channels`` is bad.
      MissingFileError: if ``path`` does not exist.
      DataError: if a folder is empty, an image is unreadable (the message names the file) or a
        class is too small for the stratified split.
      ValueError: on an unknown split.
    """
    path = data_config.get("path", None)
    if not path:
        raise ConfigError("data.path must name a directory of class folders for source 'folder'")
    class_names, files, labels = list_image_files(path)
    idx = stratified_split(labels, heldout_fraction(data_config), split)
    size, channels = int(data_config.image_size), int(data_config.channels)
    images = np.stack([read_image(files[i], size, channels) for i in idx])
    return ArraySource(images, labels[idx], len(class_names), class_names)
