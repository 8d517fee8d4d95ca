"""The style catalogue: real paintings, murals and textures, all available offline.

Paintings and murals come from the Debian package ``opencv-doc``'s examples data (``make
opencv-doc`` unpacks it into ``lwgen.data.photos.OPENCV_DOC_DATA``): van Gogh's *The Starry
Night* and two photographs of a graffiti wall (``graf1``, ``graf3``: the same wall from two
viewpoints, so they make near-identical styles). Textures come with scikit-image (``brick``,
``grass``, ``gravel``: grayscale, repeated to RGB; ``immunohistochemistry``: a stained tissue
section in brown and blue).
"""

from __future__ import annotations

import os

import numpy as np

from lwgen.data.photo_crops import resize_shorter_side
from lwgen.data.photos import OPENCV_DOC_DATA, read_photo
from lwgen.errors import ConfigError, MissingFileError

STYLES = {
    "starry_night": ("opencv", "starry_night.jpg"),
    "graf1": ("opencv", "graf1.png"),
    "graf3": ("opencv", "graf3.png"),
    "brick": ("skimage", "brick"),
    "grass": ("skimage", "grass"),
    "gravel": ("skimage", "gravel"),
    "immunohistochemistry": ("skimage", "immunohistochemistry"),
}


def _raw_style(name: str, opencv_doc_dir: str | None) -> np.ndarray:
    origin, key = STYLES[name]
    if origin == "skimage":
        import skimage.data

        image = getattr(skimage.data, key)()
        return np.repeat(image[..., None], 3, -1) if image.ndim == 2 else image[..., :3]
    path = os.path.join(opencv_doc_dir or OPENCV_DOC_DATA, key)
    if not os.path.isfile(path):
        raise MissingFileError(
            f"style {name!r} needs {path}: run `make opencv-doc` (apt-get download opencv-doc "
            "and dpkg-deb -x) or set data.opencv_doc_dir"
        )
    return read_photo(path)


def load_style(name: str, size: int, opencv_doc_dir: str | None = None) -> np.ndarray:
    """One style image, its shorter side resized to ``size`` (bicubic, aspect kept).

    Args:
      name: a key of `STYLES`.
      size: shorter side in pixels.
      opencv_doc_dir: the opencv-doc examples data folder (default ``OPENCV_DOC_DATA``).

    Returns:
      uint8 ``[H, W, 3]`` RGB with ``min(H, W) == size``.

    Raises:
      ConfigError: on an unknown style name (listing the known ones).
      MissingFileError: if an opencv-doc painting is not unpacked (saying how to fetch it).
    """
    if name not in STYLES:
        raise ConfigError(f"style {name!r} is not one of {sorted(STYLES)}")
    return resize_shorter_side(_raw_style(name, opencv_doc_dir), size)
