"""Inputs of a class-conditional generator ``G(z, y)``: the one definition of its prior.

``z ~ N(0, I)`` drawn with ``numpy.random.default_rng([seed, stream])`` and ``y`` a float32 one-hot
class vector (conditions enter models as floats, never as integer lookups). Sampling, evaluation,
export calibration and verification, and compression calibration all draw from here.
"""

from __future__ import annotations

import numpy as np

from lwgen.errors import ConfigError


def cycled_labels(num: int, num_classes: int) -> np.ndarray:
    """Classes ``0, 1, ..., K-1, 0, 1, ...``: int32 ``[num]``."""
    return (np.arange(num) % num_classes).astype(np.int32)


def prior_inputs(
    latent_dim: int, num_classes: int, labels: np.ndarray, seed: int, stream: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generator inputs for ``labels``.

    Args:
      latent_dim: size of ``z``.
      num_classes: K.
      labels: int ``[N]`` classes in ``[0, K)``.
      seed: base seed.
      stream: independent stream index (e.g. export calibration 0, verification 1).

    Returns:
      ``(z f32 [N, latent_dim] ~ N(0, I), y f32 [N, K] one-hot)``.
    """
    rng = np.random.default_rng([seed, stream])
    z = rng.standard_normal((len(labels), latent_dim), dtype=np.float32)
    return z, np.eye(num_classes, dtype=np.float32)[np.asarray(labels)]


def class_names(data_config, num_classes: int) -> list[str]:
    """``data_config.class_names`` if set, else ``"0"``, ``"1"``, ...: one name per class.

    Raises:
      ConfigError: if the names are not one per class.
    """
    names = data_config.get("class_names", None)
    names = [str(i) for i in range(num_classes)] if names is None else [str(n) for n in names]
    if len(names) != num_classes:
        raise ConfigError(f"data.class_names has {len(names)} names for {num_classes} classes")
    return names
