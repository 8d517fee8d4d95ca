"""Reads the input photos of the image→image bundles (translation, style, up-scaling) on a device.

A sibling of ``pi_infer.py`` (keep the two together): only the standard library, numpy and Pillow.
An input is one PNG/JPEG file or a folder of them (not recursive, sorted by name). Each image is
converted to the bundle's channel count, its shorter side resized to the model's side (bicubic)
and the centre cropped to the model's shape. Every error is a ``ValueError`` naming the file, which
``pi_infer.py`` prints as one line before exiting with 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PIL_MODES = {1: "L", 3: "RGB"}


def input_files(path: str) -> list[Path]:
    """The image files of ``path``: the file itself, or the sorted PNG/JPEG files of a folder.

    Raises:
      ValueError: if ``path`` does not exist, is not a PNG/JPEG file, or is a folder without one.
    """
    source = Path(path)
    if source.is_dir():
        files = sorted(
            p
            for p in source.iterdir()
            if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
        )
        if not files:
            raise ValueError(f"--input folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} files")
        return files
    if not source.is_file():
        raise ValueError(f"--input {path} does not exist")
    if source.suffix.lower() not in IMAGE_SUFFIXES:
        raise ValueError(f"--input {path} is not a {'/'.join(IMAGE_SUFFIXES)} file")
    return [source]


def fit(image: Image.Image, height: int, width: int) -> Image.Image:
    """``image`` with its shorter side scaled (bicubic) to cover ``height × width``, centre
    cropped to exactly that size."""
    scale = max(height / image.height, width / image.width)
    size = (max(width, round(image.width * scale)), max(height, round(image.height * scale)))
    if size != image.size:
        image = image.resize(size, Image.BICUBIC)
    left, top = (image.width - width) // 2, (image.height - height) // 2
    return image.crop((left, top, left + width, top + height))


def read_image(file: Path, height: int, width: int, channels: int) -> np.ndarray:
    """One file as uint8 ``[height, width, channels]`` (see the module docstring).

    Raises:
      ValueError: naming ``file`` if Pillow cannot decode it, or if ``channels`` is not 1 or 3.
    """
    if channels not in PIL_MODES:
        raise ValueError(f"image inputs need 1 or 3 channels, the bundle's model has {channels}")
    try:
        with Image.open(file) as image:
            image = fit(image.convert(PIL_MODES[channels]), height, width)
    except (OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"cannot read image {file}: {e}") from None
    return np.asarray(image, np.uint8).reshape(height, width, channels)


def read_images(path: str, height: int, width: int, channels: int) -> tuple[np.ndarray, list[str]]:
    """Every image of ``path`` (a file or a folder) at the model's input shape.

    Returns:
      ``(images, names)``: uint8 ``[N, height, width, channels]`` and the N file names.

    Raises:
      ValueError: naming the path or file at fault (missing, not an image, corrupt).
    """
    files = input_files(path)
    images = np.stack([read_image(f, height, width, channels) for f in files])
    return images, [f.name for f in files]
