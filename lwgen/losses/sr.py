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
      ``(loss, {"l1", "mse", "psnr_db"})`` scalars; ``psnr_db`` is the batch PSNR over all
      channels for a peak-to-peak of 2: ``10 log10(4 / mse)``.

    Raises:
      ValueError: on an unknown ``kind`` or mismatched shapes.
    """
    if kind not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"loss {kind!r} is not one of {RECONSTRUCTION_LOSSES}")
    if pred.shape != target.shape:
        raise ValueError(f"pred {pred.shape} and target {target.shape} differ in shape")
    l1 = jnp.mean(jnp.abs(pred - target))
    mse = jnp.mean((pred - target) ** 2)
    psnr = 10.0 * jnp.log10(4.0 / jnp.maximum(mse, 1e-10))
    return (l1 if kind == "l1" else mse), {"l1": l1, "mse": mse, "psnr_db": psnr}
