"""Pure per-device training steps, written pmap-style.

A step sees its device's shard of the global batch; gradients, metrics and model statistics are
averaged with ``lax.pmean(..., axis_name="batch")`` and per-device randomness comes from
folding ``axis_index("batch")`` into the step key (see ``sample_keys``). ``lwgen.train.loop``
runs the step with ``jax.shard_map`` inside ``jax.jit`` over a 1-D mesh named ``"batch"``
(see ``shared/DESIGN.md``).

The adversarial step is shared by every GAN family; a family supplies an *objective*
(``lwgen.train.objectives``) that says where ``z`` and the "real" images come from and which
losses to apply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import optax
from jax import lax

from lwgen.losses.gan import r1_penalty
from lwgen.train.state import GANState

AXIS = "batch"
Batch = dict[str, jax.Array]
GeneratorApply = Callable[..., Any]


class Objective(Protocol):
    """What a GAN family plugs into ``adversarial_step``."""

    r1_weight: float
    g_uses_real: bool

    def inputs(self, batch: Batch, keys: jax.Array, latent_dim: int) -> tuple[jax.Array, ...]:
        """Returns ``(z [b, latent_dim], labels int32 [b], real images [b, H, W, C])``; ``keys``
        holds one PRNG key per sample of this device's shard."""

    def d_loss(self, real_logits: jax.Array, fake_logits: jax.Array):
        """Discriminator loss ``(scalar, aux)``."""

    def g_loss(self, fake_logits, fake_features, real_features, fake, real):
        """Generator loss ``(scalar, aux)``; ``real_features`` is None unless ``g_uses_real``."""


def sample_keys(rng: jax.Array, step: jax.Array, local_batch: int) -> jax.Array:
    """One PRNG key per sample of this device's shard: ``fold_in(fold_in(rng, step), i)`` where
    ``i = axis_index("batch") * local_batch + j`` is the sample's index in the global batch.

    Keying by global sample index makes each device's randomness distinct while the whole step
    stays independent of the number of devices (the same global batch gives the same result on 1
    or 4 devices, up to float rounding of the reductions).
    """
    step_key = jax.random.fold_in(rng, step)
    first = lax.axis_index(AXIS) * local_batch
    return jax.vmap(lambda j: jax.random.fold_in(step_key, first + j))(jnp.arange(local_batch))


def _generate(generator_apply, params, model_state, z, y):
    """Runs G in training mode; returns images and its updated non-parameter collections."""
    return generator_apply(
        {"params": params, **model_state}, z, y, train=True, mutable=list(model_state)
    )


def _discriminate(discriminator, d_params, d_state, x, y, train, features=False):
    variables = {"params": d_params, **d_state}
    if train:
        return discriminator.apply(
            variables, x, y, train=True, return_features=features, mutable=list(d_state)
        )
    return discriminator.apply(variables, x, y, train=False, return_features=features), d_state


def _apply_gradients(tx, grads, opt_state, params):
    updates, opt_state = tx.update(lax.pmean(grads, AXIS), opt_state, params)
    return optax.apply_updates(params, updates), opt_state


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


def adversarial_step(
    state: GANState,
    batch: Batch,
    *,
    generator_apply: GeneratorApply,
    discriminator,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    objective: Objective,
    num_classes: int,
    latent_dim: int,
    ema_decay: float,
) -> tuple[GANState, dict[str, jax.Array]]:
    """One discriminator update then one generator update, on this device's shard.

    Args:
      state: replicated ``GANState``.
      batch: this device's shard; ``label`` int32 ``[b]``, ``image`` float32 ``[b, H, W, C]`` in
        ``[-1, 1]`` (plus ``z`` for distillation objectives).
      generator_apply: ``Generator.apply`` or a wrapper of it (e.g. fake quantization).
      discriminator: the discriminator module.
      g_tx, d_tx: optimizers.
      objective: the family's ``Objective``.
      num_classes, latent_dim: condition and latent sizes.
      ema_decay: decay of the generator EMA (warmed up by ``ema_warmup``).

    Returns:
      The new replicated state and metrics averaged over devices (float32 scalars).
    """
    keys = sample_keys(state.rng, state.step, batch["label"].shape[0])
    z, labels, real = objective.inputs(batch, keys, latent_dim)
    y = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
    fake, _ = _generate(generator_apply, state.g_params, state.g_state, z, y)
    fake = lax.stop_gradient(fake)

    def d_objective(d_params):
        logits, d_state = _discriminate(
            discriminator,
            d_params,
            state.d_state,
            jnp.concatenate([real, fake]),
            jnp.concatenate([y, y]),
            train=True,
        )
        real_logits, fake_logits = jnp.split(logits, 2)
        loss, aux = objective.d_loss(real_logits, fake_logits)
        if objective.r1_weight:
            d_fn = lambda x: _discriminate(discriminator, d_params, d_state, x, y, False)[0]  # noqa: E731
            r1, r1_aux = r1_penalty(d_fn, real)
            loss, aux = loss + 0.5 * objective.r1_weight * r1, {**aux, **r1_aux}
        return loss, ({"d_loss": loss, **aux}, d_state)

    (_, (d_metrics, d_state)), d_grads = jax.value_and_grad(d_objective, has_aux=True)(
        state.d_params
    )
    d_params, d_opt_state = _apply_gradients(d_tx, d_grads, state.d_opt_state, state.d_params)
    d_state = lax.pmean(d_state, AXIS)

    def g_objective(g_params):
        fake, g_state = _generate(generator_apply, g_params, state.g_state, z, y)
        x = jnp.concatenate([real, fake]) if objective.g_uses_real else fake
        yy = jnp.concatenate([y, y]) if objective.g_uses_real else y
        (logits, feats), _ = _discriminate(discriminator, d_params, d_state, x, yy, False, True)
        if objective.g_uses_real:
            logits = jnp.split(logits, 2)[1]
            real_feats, feats = zip(*(jnp.split(f, 2) for f in feats), strict=True)
        else:
            real_feats = None
        loss, aux = objective.g_loss(
            logits, list(feats), real_feats and list(real_feats), fake, real
        )
        return loss, ({"g_loss": loss, **aux}, g_state)

    (_, (g_metrics, g_state)), g_grads = jax.value_and_grad(g_objective, has_aux=True)(
        state.g_params
    )
    g_params, g_opt_state = _apply_gradients(g_tx, g_grads, state.g_opt_state, state.g_params)
    new_state = state.replace(
        step=state.step + 1,
        g_params=g_params,
        g_state=lax.pmean(g_state, AXIS),
        g_opt_state=g_opt_state,
        d_params=d_params,
        d_state=d_state,
        d_opt_state=d_opt_state,
        ema_params=optax.incremental_update(
            g_params, state.ema_params, 1.0 - ema_warmup(ema_decay, state.step)
        ),
    )
    return new_state, lax.pmean({**d_metrics, **g_metrics}, AXIS)
