"""Unstructured magnitude pruning: binary masks, the gradual sparsity schedule, an optax transform.

Masks are a params-shaped pytree holding float32 ``{0, 1}`` arrays for pruned leaves and ``None``
for leaves that are never pruned (biases, BatchNorm, excluded layers). Weights are ranked by L1
magnitude, either within each layer or globally over all prunable layers, and the sparsity rises
during fine-tuning along the polynomial schedule of Zhu & Gupta 2017 ("To prune, or not to prune:
exploring the efficacy of pruning for model compression", §3, eq. 1).

Keeping pruned weights at exactly zero through Adam: Adam's momentum moves a weight even when its
gradient is zero, so masking gradients is not enough. ``prune_magnitude`` is the *last*
transform of the optax chain and replaces the update of every pruned entry by ``-param``;
``optax.apply_updates`` then computes ``param + (-param)``, which is exactly ``+0.0`` in IEEE
arithmetic. ``with_pruning`` builds that chain. The masks live in the transform's state, so they
are checkpointed with the optimizer state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

PyTree = Any
SCOPES = ("layer", "global")


def _path_keys(path: tuple) -> list[str]:
    return [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]


def path_name(path: tuple) -> str:
    """Joins a pytree key path into ``"module/sub/leaf"``."""
    return "/".join(_path_keys(path))


def prunable_leaves(params: PyTree, exclude: Sequence[str] = ()) -> PyTree:
    """Marks the weights that may be pruned.

    Args:
      params: a Flax ``params`` pytree.
      exclude: module names (path components such as ``"to_image"``) whose kernels stay dense.

    Returns:
      A params-shaped pytree of Python bools: True for every ``kernel`` leaf of rank ≥ 2
      (Dense ``[in, out]``, Conv/ConvTranspose ``[kh, kw, in, out]``) outside ``exclude``;
      False for biases, BatchNorm scales and everything else.
    """
    excluded = set(exclude)

    def pick(path: tuple, leaf: Any) -> bool:
        keys = _path_keys(path)
        return keys[-1] == "kernel" and jnp.ndim(leaf) >= 2 and not excluded & set(keys)

    return jax.tree_util.tree_map_with_path(pick, params)


def _check_sparsity(sparsity: Any) -> None:
    if isinstance(sparsity, (int, float)) and not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")


def _keep_largest(magnitude: jax.Array, sparsity: jax.Array | float) -> jax.Array:
    """float32 mask of ``magnitude``'s shape zeroing exactly ``round(sparsity * size)`` entries."""
    flat = magnitude.ravel()
    num_pruned = jnp.round(sparsity * flat.size).astype(jnp.int32)
    ranks = jnp.argsort(jnp.argsort(flat, stable=True), stable=True)
    return (ranks >= num_pruned).astype(jnp.float32).reshape(magnitude.shape)


def magnitude_masks(
    params: PyTree, sparsity: float | jax.Array, prunable: PyTree, scope: str = "layer"
) -> PyTree:
    """Binary masks keeping the largest-magnitude weights (L1 ranking).

    Ties are broken by position, so exactly ``round(sparsity * n)`` weights are pruned, where
    ``n`` is the layer size (``scope="layer"``) or the total size of all prunable layers
    (``scope="global"``). Works under ``jax.jit`` with a traced ``sparsity``.

    Args:
      params: a Flax ``params`` pytree of float arrays.
      sparsity: target fraction of zeros in ``[0, 1)``.
      prunable: params-shaped pytree of bools from ``prunable_leaves``.
      scope: ``"layer"`` (each layer at ``sparsity``) or ``"global"`` (one threshold overall).

    Returns:
      Params-shaped masks: float32 ``{0, 1}`` arrays for prunable leaves, ``None`` elsewhere.

    Raises:
      ValueError: on an unknown ``scope`` or a sparsity outside ``[0, 1)``.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    _check_sparsity(sparsity)
    leaves, treedef = jax.tree.flatten(params)
    flags = treedef.flatten_up_to(prunable)
    chosen = [i for i, flag in enumerate(flags) if flag]
    magnitudes = [jnp.abs(leaves[i]) for i in chosen]
    if scope == "layer":
        kept = [_keep_largest(m, sparsity) for m in magnitudes]
    else:
        joint = _keep_largest(jnp.concatenate([m.ravel() for m in magnitudes]), sparsity)
        splits = jnp.split(joint, np.cumsum([m.size for m in magnitudes])[:-1].tolist())
        kept = [s.reshape(m.shape) for s, m in zip(splits, magnitudes, strict=True)]
    masks: list[Any] = [None] * len(leaves)
    for i, mask in zip(chosen, kept, strict=True):
        masks[i] = mask
    return treedef.unflatten(masks)


def dense_masks(params: PyTree, prunable: PyTree) -> PyTree:
    """All-ones masks (nothing pruned yet) for the prunable leaves, ``None`` elsewhere."""
    return magnitude_masks(params, 0.0, prunable)


def apply_masks(params: PyTree, masks: PyTree) -> PyTree:
    """Multiplies each masked leaf by its mask; leaves with a ``None`` mask pass unchanged.

    Use it on EMA parameters too: an EMA of a pruned weight decays towards zero but never
    reaches it exactly.
    """
    return jax.tree.map(lambda p, m: p if m is None else p * m.astype(p.dtype), params, masks)


def polynomial_sparsity_schedule(
    final_sparsity: float,
    begin_step: int,
    end_step: int,
    initial_sparsity: float = 0.0,
    frequency: int = 1,
    power: int = 3,
) -> Callable[[jax.Array | int], jax.Array]:
    """Gradual pruning schedule of Zhu & Gupta 2017, §3, eq. 1.

    ``s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n Δt))^3`` for ``t`` in
    ``{t0, t0 + Δt, ..., t0 + n Δt}``, with ``t0 = begin_step``, ``Δt = frequency`` and
    ``n Δt = end_step - begin_step``. Between pruning steps the value holds; before ``t0`` it is
    ``s_i`` and after ``t0 + n Δt`` it is ``s_f``. Like an ``optax.Schedule`` it maps a step count
    to a value and can be traced under ``jax.jit``.

    Args:
      final_sparsity: ``s_f`` in ``[0, 1)``.
      begin_step: ``t0``, the first step at which masks are updated.
      end_step: ``t0 + n Δt``, the step at which ``s_f`` is reached.
      initial_sparsity: ``s_i`` in ``[0, 1)``, usually 0.
      frequency: ``Δt`` in steps between mask updates; must divide ``end_step - begin_step``.
      power: the exponent (3 in the paper).

    Returns:
      ``schedule(step) -> float32 scalar`` sparsity.

    Raises:
      ValueError: on sparsities outside ``[0, 1)``, ``end_step <= begin_step``, a
        non-positive ``frequency`` or one that does not divide the pruning span.
    """
    _check_sparsity(final_sparsity)
    _check_sparsity(initial_sparsity)
    span = end_step - begin_step
    if begin_step < 0 or span <= 0:
        raise ValueError(f"need 0 <= begin_step < end_step, got {begin_step}, {end_step}")
    if frequency <= 0 or span % frequency:
        raise ValueError(f"frequency must be positive and divide {span} steps, got {frequency}")

    def schedule(step: jax.Array | int) -> jax.Array:
        t = jnp.clip(jnp.asarray(step, jnp.int32), begin_step, end_step) - begin_step
        t = (t // frequency) * frequency
        remaining = 1.0 - t.astype(jnp.float32) / span
        return jnp.float32(final_sparsity) + (initial_sparsity - final_sparsity) * remaining**power

    return schedule


def _as_schedule(
    schedule: Callable[[jax.Array], jax.Array] | float,
) -> Callable[[jax.Array], jax.Array]:
    if callable(schedule):
        return schedule
    _check_sparsity(schedule)
    return lambda step: jnp.full([], schedule, jnp.float32)


class PruningState(NamedTuple):
    """State of ``prune_magnitude``: update count and the current masks (checkpointed)."""

    count: jax.Array
    masks: PyTree


def prune_magnitude(
    schedule: Callable[[jax.Array], jax.Array] | float,
    prunable: PyTree,
    scope: str = "layer",
) -> optax.GradientTransformation:
    """Optax transform that prunes by magnitude and holds pruned weights at exactly zero.

    On every update whose scheduled sparsity differs from the previous step's (and on the first
    update) the masks are recomputed from the current ``params`` with ``magnitude_masks``. The
    update of each pruned entry is replaced by ``-param`` so that ``optax.apply_updates`` yields
    exactly zero; kept entries pass through unchanged. It must therefore be the LAST transform of
    the chain (after any learning-rate scaling): use ``with_pruning``.

    Args:
      schedule: ``step -> sparsity`` (e.g. ``polynomial_sparsity_schedule``) or a constant.
      prunable: params-shaped pytree of bools from ``prunable_leaves``.
      scope: ``"layer"`` or ``"global"`` magnitude ranking.

    Returns:
      An ``optax.GradientTransformation`` whose state is a ``PruningState``; its ``update``
      raises ValueError when called without ``params``.
    """
    schedule = _as_schedule(schedule)
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")

    def init_fn(params: PyTree) -> PruningState:
        return PruningState(jnp.zeros([], jnp.int32), dense_masks(params, prunable))

    def update_fn(updates: PyTree, state: PruningState, params: PyTree | None = None):
        if params is None:
            raise ValueError("prune_magnitude needs params: call tx.update(grads, state, params)")
        sparsity = schedule(state.count)
        changed = (state.count == 0) | (sparsity != schedule(jnp.maximum(state.count - 1, 0)))
        masks = jax.lax.cond(
            changed,
            lambda: magnitude_masks(params, sparsity, prunable, scope),
            lambda: state.masks,
        )
        updates = jax.tree.map(
            lambda u, p, m: u if m is None else jnp.where(m > 0, u, -p).astype(u.dtype),
            updates,
            params,
            masks,
        )
        return updates, PruningState(optax.safe_increment(state.count), masks)

    return optax.GradientTransformation(init_fn, update_fn)


def with_pruning(
    optimizer: optax.GradientTransformation,
    schedule: Callable[[jax.Array], jax.Array] | float,
    prunable: PyTree,
    scope: str = "layer",
) -> optax.GradientTransformation:
    """``optax.chain(optimizer, prune_magnitude(...))``: any optimizer with magnitude pruning.

    The chain's state is ``(optimizer_state, PruningState)``; read the masks with
    ``optax.tree_utils.tree_get(opt_state, "masks")``.
    """
    return optax.chain(optimizer, prune_magnitude(schedule, prunable, scope))


def measure_sparsity(params: PyTree, prunable: PyTree | None = None) -> dict[str, jax.Array]:
    """Fraction of exact zeros per prunable leaf and over all of them.

    Args:
      params: a Flax ``params`` pytree.
      prunable: bools from ``prunable_leaves``; default every kernel (``prunable_leaves(params)``).

    Returns:
      Flat dict of float32 scalars: ``"<module>/<leaf>"`` per prunable leaf and ``"total"``
      (zeros over all prunable weights), ready to log as metrics.
    """
    prunable = prunable_leaves(params) if prunable is None else prunable
    stats: dict[str, jax.Array] = {}
    zeros, size = jnp.zeros([], jnp.float32), 0
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    flags = jax.tree.structure(params).flatten_up_to(prunable)
    for (path, leaf), flag in zip(flat, flags, strict=True):
        if flag:
            count = jnp.sum(leaf == 0).astype(jnp.float32)
            stats[path_name(path)] = count / leaf.size
            zeros, size = zeros + count, size + leaf.size
    stats["total"] = zeros / max(size, 1)
    return stats
