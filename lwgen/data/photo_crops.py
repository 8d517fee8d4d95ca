"""The ``photos`` data source: random square crops of the real-photo catalogue
(``lwgen.data.photos``), the content images of the image→image families.

Each photo is first resized so that its shorter side is ``data.photo_side`` (a crop then shows
a good part of the scene rather than a few pixels of texture); batch ``k`` is
``random_crops(photos, data.image_size, B, seed, k)``, a pure function of ``(k, seed)``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image

from lwgen.data.photos import Photo, load_photos, random_crops
from lwgen.errors import ConfigError


def resize_shorter_side(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` resized (bicubic, aspect kept) so that ``min(H, W) == side``."""
    h, w = image.shape[:2]
    scale = side / min(h, w)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BICUBIC), np.uint8)


@dataclasses.dataclass(frozen=True)
class PhotoCropSource:
    """Deterministic random crops of a fixed list of photos.

    Attributes:
      photos: ``[(name, uint8 [H, W, 3]), ...]``.
      size: crop side in pixels.
    """

    photos: Sequence[Photo]
    size: int

    def __len__(self) -> int:
        return len(self.photos)

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """``{"image": float32 [batch_size, size, size, 3] in [-1, 1]}`` of batch ``step``."""
        return {"image": random_crops(self.photos, self.size, batch_size, seed, step)}


def load_photo_crops(data_config: Mapping, split: str) -> PhotoCropSource:
    """The crops of one split of the photo catalogue.

    Args:
      data_config: ``image_size`` (crop side), ``photo_side`` (shorter side photos are resized
        to first, ≥ image_size), optional ``opencv_doc_dir`` and ``path`` (a user photo folder).
      split: ``"train"`` or ``"heldout"``.

    Raises:
      ConfigError: if ``photo_side < image_size``.
      MissingFileError, DataError: from ``lwgen.data.photos.load_photos``.
    """
    size, side = int(data_config["image_size"]), int(data_config.get("photo_side", 256))
    if side < size:
        raise ConfigError(f"data.photo_side ({side}) must be >= data.image_size ({size})")
    folders = (data_config.get("opencv_doc_dir"), data_config.get("path"))
    return PhotoCropSource(resized_photos(split, *folders, side), size)


@functools.lru_cache(maxsize=8)
def resized_photos(
    split: str, opencv_doc_dir: str | None, folder: str | None, side: int
) -> tuple[Photo, ...]:
    """``load_photos(split, opencv_doc_dir, folder)`` with every photo's shorter side resized to
    ``side`` (cached per process: decoding and resizing the catalogue takes seconds)."""
    photos = load_photos(split, opencv_doc_dir, folder)
    return tuple((name, resize_shorter_side(photo, side)) for name, photo in photos)
