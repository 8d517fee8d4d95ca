"""The offline real-photo catalogue: content photos for style transfer and the up-scaler.

Photos come from three places, all real and all available without a download at run time:

- scikit-image's bundled sample photos (`SKIMAGE_PHOTOS`, the ones that load without ``pooch``);
- scikit-learn's two sample photos (``china.jpg``, ``flower.jpg``);
- the photographs in the Debian package ``opencv-doc``'s examples data (`OPENCV_DOC_PHOTOS`),
  fetched by ``make opencv-doc`` (``launch/ensure_opencv_doc.sh``) into `OPENCV_DOC_DATA`;
  skipped when the folder is absent;
- optionally a user folder of PNG/JPEG files.

A fixed set (`HELDOUT_PHOTOS`, and every fifth file of a user folder) is for evaluation only and
never appears in the training split. Names are ``"<origin>:<name>"``, e.g. ``"skimage:astronaut"``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from lwgen.data.folder import IMAGE_EXTENSIONS
from lwgen.errors import ConfigError, DataError, MissingFileError

OPENCV_DOC_DATA = os.path.expanduser(
    "~/.cache/lwgen/opencv-doc/usr/share/doc/opencv-doc/examples/data"
)
SKIMAGE_PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "retina",
    "rocket",
)
SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
OPENCV_DOC_PHOTOS = (
    "HappyFish.jpg",
    "aero1.jpg",
    "aero3.jpg",
    "aloeL.jpg",
    "apple.jpg",
    "baboon.jpg",
    "board.jpg",
    "building.jpg",
    "butterfly.jpg",
    "ela_original.jpg",
    "fruits.jpg",
    "home.jpg",
    "left.jpg",
    "leuvenA.jpg",
    "messi5.jpg",
    "orange.jpg",
    "rubberwhale1.png",
    "smarties.png",
    "squirrel_cls.jpg",
    "stuff.jpg",
)
HELDOUT_PHOTOS = frozenset(
    {
        "skimage:astronaut",
        "skimage:coffee",
        "sklearn:china.jpg",
        "opencv:baboon.jpg",
        "opencv:building.jpg",
        "opencv:fruits.jpg",
        "opencv:squirrel_cls.jpg",
    }
)
SPLITS = ("train", "heldout")
USER_HELDOUT_EVERY = 5

Photo = tuple[str, np.ndarray]


def _rgb(array: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W, 3]`` from a grayscale ``[H, W]`` or an RGB(A) ``[H, W, 3|4]`` array."""
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3], dtype=np.uint8)


def read_photo(path: str) -> np.ndarray:
    """Decodes one photo file to uint8 ``[H, W, 3]`` RGB.

    Raises:
      MissingFileError: if ``path`` does not exist.
      DataError: naming ``path`` if Pillow cannot decode it.
    """
    if not os.path.isfile(path):
        raise MissingFileError(f"photo {path!r} does not exist")
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), np.uint8)
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise DataError(f"cannot read image {path!r}: {e}") from e


def _library_photos() -> list[Photo]:
    import skimage.data
    from sklearn.datasets import load_sample_image

    photos = [(f"skimage:{n}", _rgb(getattr(skimage.data, n)())) for n in SKIMAGE_PHOTOS]
    return photos + [(f"sklearn:{n}", _rgb(load_sample_image(n))) for n in SKLEARN_PHOTOS]


def _opencv_doc_photos(data_dir: str) -> list[Photo]:
    if not os.path.isdir(data_dir):
        return []
    return [(f"opencv:{n}", read_photo(os.path.join(data_dir, n))) for n in OPENCV_DOC_PHOTOS]


def _folder_photos(folder: str) -> list[tuple[Photo, bool]]:
    """``((name, photo), held_out)`` for every image file in ``folder`` (sorted)."""
    if not os.path.isdir(folder):
        raise MissingFileError(f"photo folder {folder!r} is not a directory")
    files = sorted(
        f for f in os.listdir(folder) if f[0] != "." and f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not files:
        raise DataError(f"photo folder {folder!r} has no images with extension {IMAGE_EXTENSIONS}")
    return [
        ((f"folder:{f}", read_photo(os.path.join(folder, f))), i % USER_HELDOUT_EVERY == 0)
        for i, f in enumerate(files)
    ]


def load_photos(
    split: str, opencv_doc_dir: str | None = None, folder: str | None = None
) -> list[Photo]:
    """One split of the photo catalogue.

    Args:
      split: ``"train"`` or ``"heldout"`` (`HELDOUT_PHOTOS` and every fifth file of ``folder``).
      opencv_doc_dir: the opencv-doc examples data folder (default `OPENCV_DOC_DATA`); its photos
        are skipped if it does not exist.
      folder: an optional folder of the user's own photos.

    Returns:
      ``[(name, uint8 [H, W, 3] RGB), ...]`` in a fixed order.

    Raises:
      ConfigError: on an unknown split.
      MissingFileError, DataError: for a missing user folder or an unreadable photo (named).
    """
    if split not in SPLITS:
        raise ConfigError(f"photo split must be one of {SPLITS}, got {split!r}")
    tagged = [
        (photo, photo[0] in HELDOUT_PHOTOS)
        for photo in _library_photos() + _opencv_doc_photos(opencv_doc_dir or OPENCV_DOC_DATA)
    ]
    if folder:
        tagged += _folder_photos(folder)
    return [photo for photo, held_out in tagged if held_out == (split == "heldout")]


def random_crops(
    photos: Sequence[Photo], size: int, batch_size: int, seed: int, step: int
) -> np.ndarray:
    """Random square crops with random horizontal flips, deterministic in ``(seed, step)``.

    Each sample picks a photo uniformly, a crop position uniformly and a flip with probability
    1/2 from ``np.random.default_rng([seed, step])``. A photo whose shorter side is below
    ``size`` is first enlarged (bicubic) so that it is exactly ``size``.

    Args:
      photos: ``[(name, uint8 [H, W, 3]), ...]``, at least one.
      size: crop side in pixels.
      batch_size: number of crops ``B``.
      seed, step: the stream's seed and the batch index.

    Returns:
      float32 ``[B, size, size, 3]`` in [-1, 1].

    Raises:
      DataError: if ``photos`` is empty.
    """
    if not photos:
        raise DataError("random_crops needs at least one photo, got none")
    rng = np.random.default_rng([seed, step])
    crops = np.empty((batch_size, size, size, 3), np.uint8)
    for b in range(batch_size):
        photo = _at_least(photos[rng.integers(len(photos))][1], size)
        top = rng.integers(photo.shape[0] - size + 1)
        left = rng.integers(photo.shape[1] - size + 1)
        crop = photo[top : top + size, left : left + size]
        crops[b] = crop[:, ::-1] if rng.random() < 0.5 else crop
    return crops.astype(np.float32) / 127.5 - 1.0


def _at_least(photo: np.ndarray, size: int) -> np.ndarray:
    """``photo`` enlarged (bicubic, aspect kept) so that its shorter side is at least ``size``."""
    short = min(photo.shape[:2])
    if short >= size:
        return photo
    height, width = (round(d * size / short) for d in photo.shape[:2])
    resized = Image.fromarray(photo).resize((max(width, size), max(height, size)), Image.BICUBIC)
    return np.asarray(resized, np.uint8)
