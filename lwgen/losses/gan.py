"""Adversarial losses for GAN training.

Every function is pure and returns ``(scalar, aux_dict)``; logits are raw discriminator outputs
``D(x)`` of shape ``[B]`` (float32, unbounded).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lwgen.errors import ConfigError

Aux = dict[str, jax.Array]


def d_hinge_loss(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Discriminator hinge loss (Lim & Ye 2017, "Geometric GAN", eq. 7; Miyato et al. 2018, eq. 16).

    ``L_D = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]``.

    Args:
      real_logits: float32 ``[B]`` ``D`` on real images.
      fake_logits: float32 ``[B]`` ``D`` on generated images.

    Returns:
      Scalar loss and ``{"d_real": mean real logit, "d_fake": mean fake logit}``.
    """
    loss = jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))
    return loss, {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}


def g_hinge_loss(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Hinge loss for the generator (Lim & Ye 2017, eq. 8): ``L_G = -E[D(G(z))]``.

    Args:
      fake_logits: float32 ``[B]`` ``D`` on generated images.

    Returns:
      Scalar loss and an empty aux dict.
    """
    return -jnp.mean(fake_logits), {}


def d_non_saturating_loss(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Discriminator cross-entropy loss (Goodfellow et al. 2014, "Generative Adversarial Nets").

    Eq. 1 of the paper.

    ``L_D = E[softplus(-D(x))] + E[softplus(D(G(z)))]``, i.e. ``-log sigmoid(D(x)) -
    log(1 - sigmoid(D(G(z))))``.

    Args:
      real_logits: float32 ``[B]`` ``D`` on real images.
      fake_logits: float32 ``[B]`` ``D`` on generated images.

    Returns:
      Scalar loss and ``{"d_real": mean real logit, "d_fake": mean fake logit}``.
    """
    loss = jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))
    return loss, {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}


def g_non_saturating_loss(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Non-saturating generator loss (Goodfellow et al. 2014, §3): ``L_G = E[softplus(-D(G(z)))]``.

    Args:
      fake_logits: float32 ``[B]`` ``D`` on generated images.

    Returns:
      Scalar loss and an empty aux dict.
    """
    return jnp.mean(jax.nn.softplus(-fake_logits)), {}


def r1_penalty(
    discriminator_fn: Callable[[jax.Array], jax.Array], real_images: jax.Array
) -> tuple[jax.Array, Aux]:
    """R1 gradient penalty on real data (Mescheder et al. 2018, "Which Training Methods for GANs do
    actually Converge?", eq. 9), without the ``gamma / 2`` factor (the caller weights it).

    ``R1 = E_x[ ||∇_x D(x)||² ]``.

    Args:
      discriminator_fn: maps float32 ``[B, H, W, C]`` images to logits ``[B]``.
      real_images: float32 ``[B, H, W, C]`` in ``[-1, 1]``.

    Returns:
      Scalar penalty and ``{"r1": penalty}``.
    """
    grads = jax.grad(lambda x: jnp.sum(discriminator_fn(x)))(real_images)
    penalty = jnp.mean(jnp.sum(jnp.square(grads), axis=(1, 2, 3)))
    return penalty, {"r1": penalty}


D_LOSSES = {"hinge": d_hinge_loss, "non_saturating": d_non_saturating_loss}
G_LOSSES = {"hinge": g_hinge_loss, "non_saturating": g_non_saturating_loss}


def gan_losses(name: str):
    """Returns ``(d_loss_fn, g_loss_fn)`` for ``name`` in ``{"hinge", "non_saturating"}``.

    Raises:
      ConfigError: for any other name.
    """
    if name not in D_LOSSES:
        raise ConfigError(f"train.loss {name!r} is not one of {sorted(D_LOSSES)}")
    return D_LOSSES[name], G_LOSSES[name]
