"""In-memory image sources and the helpers shared by every loader.

`ArraySource` holds a whole split as uint8 images and serves deterministic batches: batch ``k``
of a run depends only on ``(k, seed)``, so a run resumed at step ``k`` sees exactly the batch an
uninterrupted run would. The helpers convert decoded images to a common size and channel count
(Pillow resampling), draw fixed stratified held-out splits (scikit-learn), and place a global
batch on the 1-D ``"batch"`` device mesh.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from PIL import Image
from sklearn.model_selection import train_test_split

from lwgen.errors import ConfigError, DataError

SPLITS = ("train", "heldout")
SPLIT_SEED = 0
DEFAULT_HELDOUT_FRACTION = 0.2


@dataclasses.dataclass(frozen=True)
class ArraySource:
    """One split of an image data set held in memory.

    Attributes:
      images: uint8 ``[N, H, W, C]`` pixel values in 0..255, N ≥ 1.
      labels: int32 ``[N]`` class indices in ``[0, num_classes)``.
      num_classes: number of classes.
      class_names: one name per class, ``len == num_classes``.

    Raises:
      DataError: on construction, if a field has the wrong dtype or shape, there are no images,
        or a label lies outside ``[0, num_classes)``.
    """

    images: np.ndarray
    labels: np.ndarray
    num_classes: int
    class_names: Sequence[str]

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(
                f"images must be uint8 [N, H, W, C], got {self.images.dtype} {self.images.shape}"
            )
        if self.labels.shape != (self.images.shape[0],):
            raise DataError(
                f"labels must have shape [{self.images.shape[0]}], got {self.labels.shape}"
            )
        if self.images.shape[0] == 0:
            raise DataError("an ArraySource needs at least one image, got 0")
        if len(self.class_names) != self.num_classes:
            raise DataError(
                f"class_names has {len(self.class_names)} entries, expected {self.num_classes}"
            )
        if self.labels.min() < 0 or self.labels.max() >= self.num_classes:
            raise DataError(
                f"labels must lie in [0, {self.num_classes}), got range "
                f"[{self.labels.min()}, {self.labels.max()}]"
            )
        object.__setattr__(self, "labels", self.labels.astype(np.int32))

    def __len__(self) -> int:
        return self.images.shape[0]

    def indices(self, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Sample indices of batch ``step``: a window over consecutive epoch permutations.

        Sample ``i`` of the stream (``i = step * batch_size + j``) is entry ``i % N`` of the
        permutation of epoch ``i // N``, drawn by ``np.random.default_rng([seed, epoch])``. A
        batch may span an epoch boundary.

        Args:
          step: non-negative batch index.
          batch_size: samples per batch, ≥ 1.
          seed: non-negative data-order seed.

        Returns:
          int64 ``[batch_size]`` indices into ``images``.

        Raises:
          ValueError: on a negative step or seed or a batch size below 1.
        """
        if step < 0 or seed < 0 or batch_size < 1:
            raise ValueError(
                f"need step >= 0, seed >= 0, batch_size >= 1; got {step}, {seed}, {batch_size}"
            )
        n = len(self)
        stream = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
        epochs, offsets = np.divmod(stream, n)
        out = np.empty_like(stream)
        for epoch in np.unique(epochs):
            permutation = np.random.default_rng([seed, int(epoch)]).permutation(n)
            in_epoch = epochs == epoch
            out[in_epoch] = permutation[offsets[in_epoch]]
        return out

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """Batch ``step`` of the deterministic stream (see `indices`).

        Args:
          step: non-negative batch index.
          batch_size: samples per batch (global, before sharding).
          seed: data-order seed.

        Returns:
          ``{"image": float32 [B, H, W, C] in [-1, 1], "label": int32 [B]}``.
        """
        idx = self.indices(step, batch_size, seed)
        return {"image": to_unit_range(self.images[idx]), "label": self.labels[idx]}


def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Maps uint8 pixels 0..255 to float32 in [-1, 1] (``x / 127.5 - 1``)."""
    return images.astype(np.float32) / 127.5 - 1.0


def convert_image(image: Image.Image, image_size: int, channels: int) -> np.ndarray:
    """Converts one Pillow image to uint8 ``[image_size, image_size, channels]``.

    Args:
      image: any Pillow image (mode converted to ``L`` or ``RGB``).
      image_size: output height and width in pixels (aspect ratio is not kept).
      channels: 1 (grayscale) or 3 (RGB).

    Returns:
      uint8 ``[image_size, image_size, channels]``.

    Raises:
      ConfigError: if ``channels`` (``data.channels``) is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    image = image.convert("L" if channels == 1 else "RGB")
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return np.asarray(image, dtype=np.uint8).reshape(image_size, image_size, channels)


def convert_images(images: np.ndarray, image_size: int, channels: int) -> np.ndarray:
    """Resizes (bicubic) and converts uint8 ``[N, H, W, C]`` images, C in {1, 3}.

    Returns the input unchanged when it already has the requested size and channels.

    Args:
      images: uint8 ``[N, H, W, C]``.
      image_size: output height and width in pixels.
      channels: 1 or 3 output channels (1 → 3 repeats the gray channel; 3 → 1 uses Pillow's
        ITU-R 601-2 luma transform).

    Returns:
      uint8 ``[N, image_size, image_size, channels]``.

    Raises:
      DataError: if the input is not uint8 ``[N, H, W, 1|3]``.
      ConfigError: if ``channels`` is not 1 or 3.
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"expected uint8 [N, H, W, 1|3] images, got {images.dtype} {images.shape}")
    if images.shape[1:] == (image_size, image_size, channels):
        return images
    if len(images) == 0:
        return np.zeros((0, image_size, image_size, channels), np.uint8)
    squeeze = images.shape[-1] == 1
    converted = [
        convert_image(Image.fromarray(im[..., 0] if squeeze else im), image_size, channels)
        for im in images
    ]
    return np.stack(converted)


def heldout_fraction(data_config: Mapping) -> float:
    """The held-out fraction from a data config (default 0.2), checked to lie in (0, 1).

    Raises:
      ConfigError: if ``data.heldout_fraction`` lies outside (0, 1).
    """
    fraction = data_config.get("heldout_fraction", None)
    fraction = DEFAULT_HELDOUT_FRACTION if fraction is None else float(fraction)
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"data.heldout_fraction must lie in (0, 1), got {fraction}")
    return fraction


def stratified_split(labels: np.ndarray, fraction: float, split: str) -> np.ndarray:
    """Indices of one side of a fixed stratified train/held-out split.

    The split uses ``SPLIT_SEED`` (independent of any training seed), so every run, seed and
    process sees the same held-out images.

    Args:
      labels: int ``[N]`` class labels.
      fraction: held-out fraction in (0, 1).
      split: ``"train"`` or ``"heldout"``.

    Returns:
      Sorted int64 indices into ``labels``; the two splits are disjoint and cover ``[0, N)``.

    Raises:
      ValueError: if ``split`` is unknown.
      DataError: if a class is too small to stratify.
    """
    check_split(split)
    try:
        train, heldout = train_test_split(
            np.arange(len(labels)), test_size=fraction, stratify=labels, random_state=SPLIT_SEED
        )
    except ValueError as e:
        raise DataError(
            f"cannot draw a stratified held-out split of {fraction} from {len(labels)} images "
            f"with {len(np.unique(labels))} classes: {e}"
        ) from e
    return np.sort(train if split == "train" else heldout)


def check_split(split: str) -> None:
    """Raises ValueError unless ``split`` is ``"train"`` or ``"heldout"``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def check_batch_divisible(batch_size: int, num_devices: int) -> None:
    """Checks that a global batch splits evenly over the devices.

    Raises:
      ConfigError: naming both numbers when ``batch_size % num_devices != 0``.
    """
    if num_devices < 1 or batch_size % num_devices:
        raise ConfigError(
            f"global batch size {batch_size} is not divisible by the device count {num_devices}"
        )


def shard_batch(batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Places a global host batch on the 1-D mesh, sharded along axis 0 (``P("batch")``).

    Args:
      batch: arrays with a common leading batch dimension ``B``.
      mesh: a 1-D ``jax.sharding.Mesh`` whose axis is named ``"batch"``.

    Returns:
      The same keys as ``jax.Array`` sharded with ``NamedSharding(mesh, P("batch"))``.

    Raises:
      ValueError: if the mesh has no ``"batch"`` axis or the leading sizes differ.
      ConfigError: if ``B`` is not divisible by the number of mesh devices.
    """
    if "batch" not in mesh.axis_names:
        raise ValueError(f"mesh must have an axis named 'batch', got {mesh.axis_names}")
    sizes = {key: np.shape(value)[0] for key, value in batch.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"batch arrays must share their leading size, got {sizes}")
    check_batch_divisible(next(iter(sizes.values())), mesh.devices.size)
    return jax.device_put(dict(batch), NamedSharding(mesh, P("batch")))
