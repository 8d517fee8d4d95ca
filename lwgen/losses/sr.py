"""Reconstruction losses of the super-resolution up-scaler."""

from __future__ import annotations

import jax
import jax.numpy as jnp

RECONSTRUCTION_LOSSES = ("l1", "mse")


def reconstruction_loss(
    pred: jax.Array, target: jax.Array, kind: str = "l1"
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean absolute (``"l1"``) or squared (``"mse"``) error between up-scaled and true images.

    FSRCNN trains on the mean squared error (Dong et al. 2016, §3.3, eq. 2); EDSR found the L1
    error to train better for PSNR (Lim et al. 2017, §4.1).

    Args:
      pred: float32 ``[B, H, W, C]`` in ``[-1, 1]``.
      target: float32 ``[B, H, W, C]`` in ``[-1, 1]``.
      kind: one of ``RECONSTRUCTION_LOSSES``.

    Returns:
      ``(loss, {"l1", "mse"})`` scalars.

    Raises:
      ValueError: on an unknown ``kind`` or mismatched shapes.
    """
    if kind not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"loss {kind!r} is not one of {RECONSTRUCTION_LOSSES}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    l1 = jnp.mean(jnp.abs(pred - target))
    mse = jnp.mean((pred - target) ** 2)
    return (l1 if kind == "l1" else mse), {"l1": l1, "mse": mse}


def psnr_from_mse(mse: jax.Array) -> jax.Array:
    """PSNR in dB of images in ``[-1, 1]`` (peak-to-peak 2): ``10 log10(4 / mse)``; take the mean
    squared error over the whole (global) batch first, then this."""
    return 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))
