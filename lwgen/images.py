"""Image grids: NHWC float images in ``[-1, 1]`` to a uint8 mosaic and an atomically written PNG."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from lwgen.io import atomic_write


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Maps float images in ``[-1, 1]`` (any shape) to uint8 ``[0, 255]`` (clipping outside)."""
    return np.clip(np.round((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def make_grid(images: np.ndarray, rows: int, gutter: int = 2, scale: int = 2) -> np.ndarray:
    """Tiles ``[N, H, W, C]`` float images in ``[-1, 1]`` into ``rows`` rows.

    Args:
      images: float ``[N, H, W, C]``, ``N`` divisible by ``rows``; C is 1 or 3.
      rows: number of rows (one per class in class-conditional grids).
      gutter: pixels of black between tiles (before scaling).
      scale: nearest-neighbour upscaling factor of the whole grid.

    Returns:
      uint8 ``[rows*(H+gutter)*scale, cols*(W+gutter)*scale, C]``.

    Raises:
      ValueError: if ``N`` is not divisible by ``rows``.
    """
    n, h, w, c = images.shape
    if rows <= 0 or n % rows:
        raise ValueError(f"cannot tile {n} images into {rows} rows")
    cols = n // rows
    grid = np.zeros((rows * (h + gutter), cols * (w + gutter), c), np.uint8)
    for i, tile in enumerate(to_uint8(images)):
        r, col = divmod(i, cols)
        grid[
            r * (h + gutter) : r * (h + gutter) + h, col * (w + gutter) : col * (w + gutter) + w
        ] = tile
    return grid.repeat(scale, axis=0).repeat(scale, axis=1)


def save_png(path: str | os.PathLike, grid: np.ndarray) -> None:
    """Writes a uint8 ``[H, W, C]`` array (C = 1 or 3) to ``path`` as PNG, atomically.

    The folder is created if needed (see `lwgen.io.atomic_write`).
    """
    image = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    atomic_write(path, lambda f: image.save(f, format="PNG"))
