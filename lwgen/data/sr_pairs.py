"""Super-resolution pairs: high-resolution crops and their bicubic-downsampled inputs.

Source ``"sr_pairs"`` (``data.source``) serves ``{"lowres": f32 [B, h, w, C], "image": f32
[B, h·scale, w·scale, C]}`` batches in ``[-1, 1]``, a pure function of ``(step, seed)``: random
high-resolution crops with random horizontal flips (``lwgen.data.photos.random_crops``) from a
pool of images, converted to ``data.channels``,
and their antialiased bicubic reductions by ``data.scale`` (Pillow's ``BICUBIC``, whose support
widens with the reduction like MATLAB's ``imresize``: the degradation of the super-resolution
benchmarks, e.g. Dong et al. 2016 §4.1), rounded to uint8 levels as a stored image would be.

The pool (``data.hr_source``):

* ``"photos"``: the offline photo catalogue (``lwgen.data.photos``: scikit-image, scikit-learn and
  opencv-doc photos from ``data.opencv_doc_dir``, plus the user folder ``data.folder``), split
  into a training set and a fixed held-out set used for evaluation only;
* any other ``data.source`` name: that data set's own images (``data.hr_data`` is its data config,
  e.g. Fashion-MNIST at 32×32), the only high-resolution images such a family has; its held-out
  split is the data set's.

One-channel pairs use the full-range BT.601 luma of the RGB crops (as Pillow's ``L`` mode), so a
gray up-scaler can learn from colour photos. `eval_tiles` cuts the held-out pool into a fixed grid
of tiles for evaluation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import numpy as np
from PIL import Image

from lwgen.data.photos import load_photos, random_crops
from lwgen.data.source import check_split
from lwgen.errors import ConfigError, DataError

PHOTOS = "photos"
GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601, full range


def to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """RGB float ``[..., 3]`` images → ``channels`` (3: unchanged; 1: full-range BT.601 luma).

    Raises:
      ConfigError: if ``channels`` (``data.channels``) is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ConfigError(f"data.channels must be 1 or 3, got {channels}")
    if channels == 3:
        return images
    return (images @ GRAY_WEIGHTS)[..., None].astype(np.float32)


def _resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow ``BICUBIC`` resize of float ``[N, H, W, C]`` images, channel by channel."""
    out = np.empty((len(images), height, width, images.shape[-1]), np.float32)
    for i, image in enumerate(images):
        for c in range(images.shape[-1]):
            plane = Image.fromarray(np.ascontiguousarray(image[..., c], np.float32))
            out[i, ..., c] = np.asarray(plane.resize((width, height), Image.Resampling.BICUBIC))
    return out


def downsample(images: np.ndarray, scale: int) -> np.ndarray:
    """Antialiased bicubic reduction by ``scale``, rounded to uint8 levels.

    Args:
      images: float32 ``[N, H, W, C]`` in ``[-1, 1]``, ``H`` and ``W`` multiples of ``scale``.
      scale: reduction factor ≥ 1.

    Returns:
      float32 ``[N, H / scale, W / scale, C]`` in ``[-1, 1]`` on the 256 levels of uint8.

    Raises:
      DataError: if a side is not a multiple of ``scale``.
    """
    _, h, w, _ = images.shape
    if h % scale or w % scale:
        raise DataError(f"image size {h}x{w} is not a multiple of the scale {scale}")
    small = _resize(images, h // scale, w // scale)
    return np.clip(np.round((small + 1.0) * 127.5), 0, 255).astype(np.float32) / 127.5 - 1.0


def bicubic_upsample(images: np.ndarray, scale: int) -> np.ndarray:
    """The baseline: Pillow ``BICUBIC`` enlargement by ``scale`` of float32 ``[N, h, w, C]`` in
    ``[-1, 1]``, clipped to ``[-1, 1]``."""
    _, h, w, _ = images.shape
    return np.clip(_resize(images, h * scale, w * scale), -1.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SRPairSource:
    """One split of super-resolution pairs, drawn from a pool of high-resolution images.

    Attributes:
      pool: ``[(name, uint8 [H, W, 3])]`` high-resolution images.
      crop_size: high-resolution crop side, a multiple of ``scale``.
      scale: reduction factor.
      channels: 1 or 3.
    """

    pool: list
    crop_size: int
    scale: int
    channels: int

    def __len__(self) -> int:
        return len(self.pool)

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """Batch ``step``: ``{"lowres": f32 [B, crop/scale, crop/scale, C], "image": f32
        [B, crop, crop, C]}`` in ``[-1, 1]``, a pure function of ``(step, seed)``."""
        crops = random_crops(self.pool, self.crop_size, batch_size, seed, step)
        image = to_channels(crops, self.channels)
        return {"lowres": downsample(image, self.scale), "image": image}


def eval_tiles(pool, size: int) -> np.ndarray:
    """The held-out evaluation set: every image of ``pool`` cut into the non-overlapping
    ``size``×``size`` tiles of a grid centred on it, in pool then row-major order.

    Returns:
      uint8 ``[N, size, size, 3]``.

    Raises:
      DataError: if no image of the pool holds one tile.
    """
    tiles = []
    for _, image in pool:
        rows, cols = image.shape[0] // size, image.shape[1] // size
        top, left = (image.shape[0] - rows * size) // 2, (image.shape[1] - cols * size) // 2
        for r in range(rows):
            for c in range(cols):
                y, x = top + r * size, left + c * size
                tiles.append(image[y : y + size, x : x + size])
    if not tiles:
        raise DataError(f"no held-out image is {size}x{size} pixels or larger")
    return np.stack(tiles)


def _as_rgb(images: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """uint8 ``[N, H, W, 1|3]`` data-set images as a pool of RGB images."""
    rgb = np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images
    return [(str(i), image) for i, image in enumerate(rgb)]


def hr_pool(data_config: Mapping, split: str, load_source: Callable) -> list:
    """The high-resolution pool of ``data.hr_source`` (see the module docstring).

    Args:
      data_config: the ``data`` group (``hr_source``; ``opencv_doc_dir`` and ``folder`` for the
        photos, ``hr_data`` for a data set pool).
      split: ``"train"`` or ``"heldout"``.
      load_source: ``lwgen.data.load_source`` (passed in: this module is one of its loaders).

    Raises:
      ConfigError: if ``hr_source`` is a data set and ``hr_data`` is missing.
    """
    check_split(split)
    source = data_config.get("hr_source", PHOTOS)
    if source == PHOTOS:
        return load_photos(split, data_config.get("opencv_doc_dir"), data_config.get("folder"))
    hr_data = data_config.get("hr_data", None)
    if hr_data is None or hr_data.get("source", None) != source:
        raise ConfigError(f"data.hr_source {source!r} needs data.hr_data with source={source!r}")
    return _as_rgb(load_source(hr_data, split).images)


def load_sr_pairs(data_config: Mapping, split: str, load_source: Callable) -> SRPairSource:
    """The ``"sr_pairs"`` source of one split.

    Args:
      data_config: ``scale``, ``crop_size`` (high resolution), ``channels``, ``hr_source``
        (and ``hr_data``).
      split: ``"train"`` or ``"heldout"``.
      load_source: ``lwgen.data.load_source``.

    Raises:
      ConfigError: if ``crop_size`` is not a positive multiple of ``scale`` or larger than an
        image of the pool, or ``channels`` is not 1 or 3.
    """
    scale, crop, channels = (int(data_config[k]) for k in ("scale", "crop_size", "channels"))
    if scale < 1 or crop < scale or crop % scale:
        raise ConfigError(
            f"data.crop_size {crop} must be a positive multiple of data.scale {scale}"
        )
    to_channels(np.zeros((1, 3), np.float32), channels)
    pool = hr_pool(data_config, split, load_source)
    smallest = min(min(image.shape[:2]) for _, image in pool)
    if crop > smallest:
        raise ConfigError(f"data.crop_size {crop} exceeds the smallest pool image ({smallest} px)")
    return SRPairSource(pool, crop, scale, channels)
