"""Unpaired two-domain image sources for CycleGAN: ``{"image_a", "image_b"}`` batches.

`UnpairedSource` holds the two domains of one split as uint8 images at ``data.load_size`` and
serves batches whose two halves are shuffled independently, each a pure function of
``(seed, step)`` (so a resumed run sees the batches an uninterrupted run would). Training batches
take a random ``image_size`` crop of each image and, with ``data.flip``, a random horizontal flip
(Zhu et al. 2017, §4 and App. 7.1: resize to 286, random 256 crop, flip); held-out images are
center-cropped.

Loaders (``data.source``):

* ``"fashion_unpaired"``: two Fashion-MNIST classes (``data.class_a``, ``data.class_b``; default
  7 "Sneaker" ↔ 9 "Ankle boot", 6,000 training and 1,000 test images each) from the IDX files of
  ``lwgen.data.idx``; "train" is the training split, "heldout" the test split.
* ``"unpaired_folder"``: ``data.path/A/`` and ``data.path/B/``, images of any size (resized on
  the shorter side to ``load_size`` and center-cropped); a fixed ``heldout_fraction`` of each
  folder is held out. A corrupt image raises ``DataError`` naming the file.
* ``"cycle_gan_tfds"``: TFDS ``cycle_gan/*`` (``data.tfds_name``, e.g.
  ``"cycle_gan/horse2zebra"``) through ``tfds.load``: ``trainA``/``trainB`` and ``testA``/``testB``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

import ml_collections
import numpy as np
from PIL import Image, ImageOps

from lwgen.data.folder import IMAGE_EXTENSIONS, read_image
from lwgen.data.idx import load_fashion_mnist_idx
from lwgen.data.source import SPLIT_SEED, check_split, heldout_fraction, to_unit_range
from lwgen.errors import ConfigError, DataError, MissingFileError

DOMAINS = ("a", "b")
FASHION_SNEAKER, FASHION_ANKLE_BOOT = 7, 9
TFDS_SPLITS = {"train": "train", "heldout": "test"}


@dataclasses.dataclass(frozen=True)
class UnpairedSource:
    """One split of two unpaired image domains held in memory.

    Attributes:
      images_a: uint8 ``[N_a, L, L, C]`` domain-A images at the load size ``L``.
      images_b: uint8 ``[N_b, L, L, C]`` domain-B images.
      image_size: crop size ``S ≤ L`` of the served images.
      flip: random horizontal flips in `batch`.

    Raises:
      DataError: on construction, if a domain is empty, the arrays are not uint8 NHWC of the same
        load size and channels, or ``image_size`` exceeds the load size.
    """

    images_a: np.ndarray
    images_b: np.ndarray
    image_size: int
    flip: bool = False

    def __post_init__(self):
        for name, images in (("A", self.images_a), ("B", self.images_b)):
            if images.dtype != np.uint8 or images.ndim != 4 or len(images) == 0:
                raise DataError(
                    f"domain {name} needs uint8 [N >= 1, H, W, C] images, got {images.dtype} "
                    f"{images.shape}"
                )
        if self.images_a.shape[1:] != self.images_b.shape[1:]:
            raise DataError(
                f"domains differ in shape: {self.images_a.shape[1:]} vs {self.images_b.shape[1:]}"
            )
        if not 1 <= self.image_size <= min(self.images_a.shape[1:3]):
            raise DataError(
                f"image_size {self.image_size} exceeds the load size {self.images_a.shape[1]}"
            )

    def __len__(self) -> int:
        return max(len(self.images_a), len(self.images_b))

    def _domain(self, domain: str) -> np.ndarray:
        return self.images_a if domain == "a" else self.images_b

    def indices(self, domain: str, step: int, batch_size: int, seed: int) -> np.ndarray:
        """Indices of batch ``step`` into one domain: sample ``i = step · B + j`` is entry
        ``i mod N`` of epoch ``i // N``'s permutation from ``default_rng([seed, d, epoch])``
        (``d`` = 0 for A, 1 for B, so the domains are shuffled independently)."""
        if step < 0 or seed < 0 or batch_size < 1:
            raise ValueError(
                f"need step >= 0, seed >= 0, batch_size >= 1; got {step}, {seed}, {batch_size}"
            )
        n, d = len(self._domain(domain)), DOMAINS.index(domain)
        stream = np.arange(step * batch_size, (step + 1) * batch_size, dtype=np.int64)
        epochs, offsets = np.divmod(stream, n)
        out = np.empty_like(stream)
        for epoch in np.unique(epochs):
            permutation = np.random.default_rng([seed, d, int(epoch)]).permutation(n)
            out[epochs == epoch] = permutation[offsets[epochs == epoch]]
        return out

    def _augment(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A random ``image_size`` crop of each image, flipped with probability ½ if ``flip``."""
        size, load = self.image_size, images.shape[1]
        offsets = rng.integers(0, load - size + 1, (len(images), 2))
        flips = rng.random(len(images)) < 0.5
        out = np.stack(
            [im[r : r + size, c : c + size] for im, (r, c) in zip(images, offsets, strict=True)]
        )
        if self.flip:
            out[flips] = out[flips, :, ::-1]
        return out

    def batch(self, step: int, batch_size: int, seed: int) -> dict[str, np.ndarray]:
        """Batch ``step``: ``{"image_a", "image_b"}``, float32 ``[B, S, S, C]`` in ``[-1, 1]``,
        randomly cropped and flipped, a pure function of ``(step, batch_size, seed)``."""
        out = {}
        for d, domain in enumerate(DOMAINS):
            images = self._domain(domain)[self.indices(domain, step, batch_size, seed)]
            rng = np.random.default_rng([seed, d, step, 1])
            out[f"image_{domain}"] = to_unit_range(self._augment(images, rng))
        return out

    def center(self, domain: str) -> np.ndarray:
        """Every image of ``domain`` (``"a"`` or ``"b"``) center-cropped: uint8 ``[N, S, S, C]``."""
        images = self._domain(domain)
        top = (images.shape[1] - self.image_size) // 2
        return images[:, top : top + self.image_size, top : top + self.image_size]


def fit_image(image: Image.Image, size: int, channels: int) -> np.ndarray:
    """Resizes a Pillow image on its shorter side to ``size`` (bicubic) and center-crops it to
    uint8 ``[size, size, channels]`` (``PIL.ImageOps.fit``), keeping the aspect ratio.

    Raises:
      ConfigError: if ``channels`` is not 1 or 3.
    """
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 or 3, got {channels}")
    image = ImageOps.fit(image.convert("L" if channels == 1 else "RGB"), (size, size),
                         Image.Resampling.BICUBIC)  # fmt: skip
    return np.asarray(image, np.uint8).reshape(size, size, channels)


def _sizes(data_config: Mapping) -> tuple[int, int, int, bool]:
    """``(image_size, load_size, channels, flip)`` of a data config (``load_size`` defaults to
    ``image_size``, ``flip`` to False)."""
    size = int(data_config.image_size)
    load = int(data_config.get("load_size", None) or size)
    if load < size:
        raise ConfigError(f"data.load_size {load} must be >= data.image_size {size}")
    return size, load, int(data_config.channels), bool(data_config.get("flip", False))


def load_fashion_unpaired(data_config: Mapping, split: str) -> UnpairedSource:
    """Two Fashion-MNIST classes as unpaired domains (see the module docstring).

    Raises:
      ConfigError: on classes outside 0..9 or equal, or bad sizes.
      MissingFileError, DataError: from ``lwgen.data.idx``.
    """
    class_a = int(data_config.get("class_a", FASHION_SNEAKER))
    class_b = int(data_config.get("class_b", FASHION_ANKLE_BOOT))
    if class_a == class_b or not (0 <= class_a < 10 and 0 <= class_b < 10):
        raise ConfigError(f"data.class_a/class_b must be two classes in 0..9, got {class_a}, "
                          f"{class_b}")  # fmt: skip
    size, load, channels, flip = _sizes(data_config)
    config = dict(data_dir=data_config.get("data_dir", None), image_size=load, channels=channels)
    source = load_fashion_mnist_idx(ml_collections.ConfigDict(config), split)
    images = {c: source.images[source.labels == c] for c in (class_a, class_b)}
    return UnpairedSource(images[class_a], images[class_b], size, flip)


def _split_files(files: list[str], fraction: float, split: str) -> list[str]:
    """A fixed held-out ``fraction`` of ``files`` (at least one file on each side)."""
    order = np.random.default_rng(SPLIT_SEED).permutation(len(files))
    num_heldout = min(max(1, int(round(fraction * len(files)))), len(files) - 1)
    chosen = order[:num_heldout] if split == "heldout" else order[num_heldout:]
    return [files[i] for i in sorted(chosen)]


def _folder_files(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise MissingFileError(f"domain folder {folder!r} does not exist (need data.path/A, /B)")
    files = sorted(
        os.path.join(folder, f)
        for f in os.listdir(folder)
        if f[0] != "." and f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if len(files) < 2:
        raise DataError(f"domain folder {folder!r} needs >= 2 images {IMAGE_EXTENSIONS}")
    return files


def load_unpaired_folder(data_config: Mapping, split: str) -> UnpairedSource:
    """``data.path/A`` and ``data.path/B`` as unpaired domains (see the module docstring).

    Raises:
      ConfigError: if ``data.path`` is unset or sizes are bad.
      MissingFileError: if a domain folder does not exist.
      DataError: if a folder has fewer than 2 images or an image cannot be decoded (naming it).
    """
    check_split(split)
    path = data_config.get("path", None)
    if not path:
        raise ConfigError("data.path must name a folder with A/ and B/ for 'unpaired_folder'")
    size, load, channels, flip = _sizes(data_config)
    fraction = heldout_fraction(data_config)
    domains = []
    for name in ("A", "B"):
        files = _split_files(_folder_files(os.path.join(path, name)), fraction, split)
        domains.append(np.stack([read_image(f, load, channels, fit_image) for f in files]))
    return UnpairedSource(*domains, size, flip)


def load_cycle_gan_tfds(data_config: Mapping, split: str) -> UnpairedSource:
    """TFDS ``data.tfds_name`` (a ``cycle_gan/*`` data set) as unpaired domains.

    Raises:
      ConfigError: if ``data.tfds_name`` is not a ``cycle_gan/`` name, or on bad sizes.
    """
    check_split(split)
    name = data_config.get("tfds_name", None) or ""
    if not name.startswith("cycle_gan/"):
        raise ConfigError(f"data.tfds_name must be 'cycle_gan/<pair>', got {name!r}")
    import tensorflow_datasets as tfds

    size, load, channels, flip = _sizes(data_config)
    domains = []
    for domain in ("A", "B"):
        ds = tfds.load(
            name,
            split=TFDS_SPLITS[split] + domain,
            data_dir=data_config.get("data_dir", None),
            as_supervised=True,
        )
        images = [
            fit_image(
                Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image),
                load,
                channels,
            )  # fmt: skip
            for image, _ in tfds.as_numpy(ds)
        ]
        domains.append(np.stack(images))
    return UnpairedSource(*domains, size, flip)
