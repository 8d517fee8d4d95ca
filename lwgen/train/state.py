"""Train-state pytrees and the optimizers that update them."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from lwgen.models.dcgan import Discriminator, Generator

PyTree = Any


@flax.struct.dataclass
class GANState:
    """Everything a GAN run needs to continue bit-identically (all leaves are arrays).

    Attributes:
      step: int32 scalar, number of completed steps (also the data position: batches are a pure
        function of the step).
      rng: uint32 ``[2]`` base PRNG key; step keys are ``fold_in(rng, step)``.
      g_params, d_params: generator / discriminator parameters.
      g_state, d_state: their non-parameter collections (BatchNorm statistics, spectral-norm
        power-iteration vectors, QAT ranges), keyed by collection name.
      g_opt_state, d_opt_state: optax states.
      ema_params: exponential moving average of ``g_params`` (Karras et al. 2018, "Progressive
        Growing of GANs", §A.1), the weights that are evaluated and exported.
    """

    step: jax.Array
    rng: jax.Array
    g_params: PyTree
    g_state: PyTree
    g_opt_state: PyTree
    d_params: PyTree
    d_state: PyTree
    d_opt_state: PyTree
    ema_params: PyTree


def build_models(model_config: ml_collections.ConfigDict) -> tuple[Generator, Discriminator]:
    """Builds the generator and discriminator from ``config.model``.

    Raises:
      TypeError: if a ``generator`` or ``discriminator`` field is not a field of that module.
    """
    generator = Generator(**model_config.generator.to_dict())
    discriminator = Discriminator(**model_config.discriminator.to_dict())
    return generator, discriminator


def make_optimizers(
    optim_config: ml_collections.ConfigDict,
) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Adam for G and D (Kingma & Ba 2015) with the betas of Radford et al. 2016 §4 by default."""
    g_tx = optax.adam(optim_config.g_lr, b1=optim_config.b1, b2=optim_config.b2)
    d_tx = optax.adam(optim_config.d_lr, b1=optim_config.b1, b2=optim_config.b2)
    return g_tx, d_tx


def _split(variables: PyTree) -> tuple[PyTree, PyTree]:
    variables = dict(variables)
    return variables.pop("params"), variables


def create_gan_state(
    generator: Generator,
    discriminator: Discriminator,
    g_tx: optax.GradientTransformation,
    d_tx: optax.GradientTransformation,
    seed: int,
) -> GANState:
    """Initialises a fresh ``GANState`` from ``seed`` (deterministic).

    Args:
      generator, discriminator: the modules (any ``axis_name``; init runs in eval mode).
      g_tx, d_tx: optimizers.
      seed: base seed; init keys and the per-step base key derive from it.

    Returns:
      A ``GANState`` at step 0 with ``ema_params == g_params``.
    """
    base = jax.random.PRNGKey(seed)
    g_key, d_key, run_key = jax.random.split(base, 3)
    h, w, c = generator.image_shape
    z = jnp.zeros((1, generator.latent_dim), jnp.float32)
    y = jnp.zeros((1, generator.num_classes), jnp.float32)
    g_params, g_state = _split(generator.init(g_key, z, y))
    d_params, d_state = _split(discriminator.init(d_key, jnp.zeros((1, h, w, c)), y))
    return GANState(
        step=jnp.zeros((), jnp.int32),
        rng=run_key,
        g_params=g_params,
        g_state=g_state,
        g_opt_state=g_tx.init(g_params),
        d_params=d_params,
        d_state=d_state,
        d_opt_state=d_tx.init(d_params),
        ema_params=jax.tree.map(jnp.copy, g_params),
    )
