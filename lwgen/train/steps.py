"""Building blocks of per-device training steps, written pmap-style.

A step sees its device's shard of the global batch; gradients, metrics and model statistics are
averaged with ``lax.pmean(..., axis_name="batch")`` and per-device randomness comes from the
global sample index (`sample_keys`). ``lwgen.train.loop`` runs a family's step with
``jax.shard_map`` inside ``jax.jit`` over a 1-D mesh named ``"batch"`` (see ``shared/DESIGN.md``).

`update_network` is the one place a network's gradient is averaged and applied: a step with four
networks calls it four times.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax import lax

from lwgen.train.state import NetworkState, PyTree

AXIS = "batch"


def sample_keys(rng: jax.Array, step: jax.Array, local_batch: int) -> jax.Array:
    """One PRNG key per sample of this device's shard: ``fold_in(fold_in(rng, step), i)`` where
    ``i = axis_index("batch") * local_batch + j`` is the sample's index in the global batch.

    Keying by global sample index makes each device's randomness distinct while the whole step
    stays independent of the number of devices (the same global batch gives the same result on 1
    or 4 devices, up to float rounding of the reductions).

    Returns:
      uint32 ``[local_batch, 2]`` keys.
    """
    step_key = jax.random.fold_in(rng, step)
    first = lax.axis_index(AXIS) * local_batch
    return jax.vmap(lambda j: jax.random.fold_in(step_key, first + j))(jnp.arange(local_batch))


def update_network(
    network: NetworkState,
    grads: PyTree,
    tx: optax.GradientTransformation,
    collections: dict[str, PyTree] | None = None,
) -> NetworkState:
    """Averages ``grads`` over devices, applies ``tx`` and averages the new collections.

    Args:
      network: the network before the update (replicated).
      grads: this device's gradient of the loss with respect to ``network.params``.
      tx: the network's optimizer.
      collections: its updated non-parameter collections from this device's forward pass
        (``None``: unchanged); averaged over devices so every replica keeps the same statistics.

    Returns:
      The updated network (still replicated).
    """
    updates, opt_state = tx.update(lax.pmean(grads, AXIS), network.opt_state, network.params)
    collections = network.collections if collections is None else lax.pmean(collections, AXIS)
    return NetworkState(optax.apply_updates(network.params, updates), collections, opt_state)


def ema_warmup(ema_decay: float, step: jax.Array) -> jax.Array:
    """EMA decay ``min(ema_decay, (1 + step) / (10 + step))``.

    The warm-up of ``tf.train.ExponentialMovingAverage(num_updates=step)``: early in training the
    average follows the weights closely instead of staying near their random initialization.

    Args:
      ema_decay: the asymptotic decay in ``[0, 1)``.
      step: int32 scalar, completed steps before this update.

    Returns:
      float32 scalar decay for this update.
    """
    step = step.astype(jnp.float32)
    return jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))


def update_ema(ema: PyTree, params: PyTree, ema_decay: float, step: jax.Array) -> PyTree:
    """``decay · ema + (1 - decay) · params`` with the warmed-up decay of `ema_warmup`."""
    return optax.incremental_update(params, ema, 1.0 - ema_warmup(ema_decay, step))


def pmean_metrics(metrics: dict[str, Any]) -> dict[str, jax.Array]:
    """Metrics averaged over devices (float32 scalars)."""
    return lax.pmean(metrics, AXIS)
