"""The ``style`` path of ``pi_infer.py`` on a device: photos in, stylized photos out.

A sibling of ``pi_infer.py`` (keep them together); needs only numpy. The bundle's ``stylizer``
maps ``image f32 [B, S, S, 3]`` in ``[-1, 1]`` and ``style f32 [B, K]`` (one-hot, in the order of
``bundle.json``'s ``style_names``) to the stylized image. Photos are fitted to ``S × S`` by
``pi_images.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Stylizer = Callable[..., dict[str, np.ndarray]]


def style_vector(name: str | None, style_names: Sequence[str]) -> np.ndarray:
    """The float32 ``[K]`` one-hot of style ``name``.

    Raises:
      ValueError: listing the valid names if ``name`` is None or not one of ``style_names``.
    """
    if name not in style_names:
        given = "no --style given" if name is None else f"--style {name!r} is not in this bundle"
        raise ValueError(f"{given}; valid styles: {', '.join(style_names)}")
    return np.eye(len(style_names), dtype=np.float32)[list(style_names).index(name)]


def stylize(run: Stylizer, images: np.ndarray, style: np.ndarray) -> np.ndarray:
    """Stylizes uint8 ``[N, S, S, 3]`` photos with ``run(image=, style=) -> {"image": ...}``
    (the bundle model, batch by batch); returns float32 ``[N, S, S, 3]`` in ``[-1, 1]``."""
    x = images.astype(np.float32) / 127.5 - 1.0
    styles = np.repeat(style[None], len(images), axis=0)
    return run(image=x, style=styles)["image"]
