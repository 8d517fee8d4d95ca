"""Fashion-MNIST from its gzipped IDX files (no TFDS, no download).

Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747; MIT licence): 60,000 training and
10,000 test 28×28 grayscale images of 10 clothing classes. The Debian package
``dataset-fashion-mnist`` installs the four files this source reads under `DEFAULT_DIR`:

- ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz`` → split ``"train"`` (60,000);
- ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` → split ``"heldout"`` (the
  standard 10,000-image test split, used only by evaluation).

An IDX file (LeCun et al., "THE MNIST DATABASE", file format section) is a big-endian header (two
zero bytes, a type code, ``0x08`` for unsigned bytes, the number of dimensions ``d``, then ``d``
uint32 sizes) followed by the values in C order. Images are ``[N, 28, 28]`` (``d = 3``) and
labels ``[N]`` (``d = 1``).

28×28 images are **resized** (bicubic, `lwgen.data.source.convert_images`, like every other
source) to ``data.image_size``, not zero-padded, so this source and the TFDS ``fashion_mnist``
source give the same arrays at every size.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Mapping

import numpy as np

from lwgen.data.source import ArraySource, check_split, convert_images
from lwgen.errors import DataError, MissingFileError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
INSTALL_HINT = "install it with `sudo apt-get install dataset-fashion-mnist`"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "heldout": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
UBYTE = 0x08
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Reads one gzipped IDX file of unsigned bytes.

    Args:
      path: a ``.gz`` IDX file.
      ndim: the number of dimensions the file must have (3 for images, 1 for labels).

    Returns:
      uint8 array of the shape in the header (read-only, a view of the decompressed bytes).

    Raises:
      MissingFileError: if ``path`` does not exist.
      DataError: naming ``path`` if it is not gzip, is truncated, has a bad magic number (type
        code other than ``0x08`` or a dimension count other than ``ndim``) or holds fewer or
        more values than its header says.
    """
    if not os.path.isfile(path):
        raise MissingFileError(f"IDX file {path} does not exist; {INSTALL_HINT}")
    try:
        with gzip.open(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot decompress IDX file {path} (corrupt or truncated): {e}") from e
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file {path} is truncated: {len(data)} bytes, header needs {header_size}"
        )
    zero, type_code, dims = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0 or type_code != UBYTE or dims != ndim:
        raise DataError(
            f"IDX file {path} has magic number 0x{data[:4].hex()}, expected "
            f"0x0000{UBYTE:02x}{ndim:02x} (unsigned bytes, {ndim} dimensions)"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(data) - header_size != expected:
        raise DataError(
            f"IDX file {path} holds {len(data) - header_size} values, its header {shape} says "
            f"{expected} (truncated or padded)"
        )
    return np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)


def read_fashion_mnist(data_dir: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split at the native size.

    Args:
      data_dir: the folder holding the four IDX files.
      split: ``"train"`` or ``"heldout"``.

    Returns:
      ``(images, labels)``: uint8 ``[N, 28, 28, 1]`` in 0..255 and int32 ``[N]`` in 0..9 (N is
      60,000 for "train" and 10,000 for "heldout" with the Debian files).

    Raises:
      MissingFileError: naming the folder or file if missing, with the install command.
      DataError: on a corrupt file (see `read_idx`) or image and label counts that differ.
      ValueError: on an unknown split.
    """
    check_split(split)
    if not os.path.isdir(data_dir):
        raise MissingFileError(f"Fashion-MNIST folder {data_dir} does not exist; {INSTALL_HINT}")
    images_path, labels_path = (os.path.join(data_dir, name) for name in FILES[split])
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels"
        )
    return images[..., None], labels.astype(np.int32)


def load_fashion_mnist_idx(data_config: Mapping, split: str) -> ArraySource:
    """One split of Fashion-MNIST from IDX files, resized to ``data_config.image_size``.

    Args:
      data_config: needs ``image_size`` and ``channels`` (1, or 3 to repeat the gray channel);
        optional ``data_dir`` (the IDX folder; ``None`` uses `DEFAULT_DIR`).
      split: ``"train"`` (the 60,000 training images) or ``"heldout"`` (the 10,000 test images).

    Returns:
      An `ArraySource` with uint8 ``[N, image_size, image_size, channels]`` images, int32 labels
      and the ten Fashion-MNIST class names (`CLASS_NAMES`).

    Raises:
      MissingFileError: if the folder or a file is missing (the message says how to install it).
      DataError: on a corrupt, truncated or inconsistent file (the message names it) or a label
        outside 0..9.
      ConfigError: on a bad ``channels``.
      ValueError: on an unknown split.
    """
    data_dir = data_config.get("data_dir", None) or DEFAULT_DIR
    images, labels = read_fashion_mnist(os.path.expanduser(data_dir), split)
    images = convert_images(images, int(data_config.image_size), int(data_config.channels))
    return ArraySource(images, labels, len(CLASS_NAMES), list(CLASS_NAMES))
