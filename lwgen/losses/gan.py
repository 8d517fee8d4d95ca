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


def mode_seeking_loss(
    images_1: jax.Array, images_2: jax.Array, z_1: jax.Array, z_2: jax.Array, eps: float = 1e-5
) -> tuple[jax.Array, Aux]:
    """Mode-seeking regulariser of MSGAN (Mao et al. 2019, "Mode Seeking Generative Adversarial
    Networks for Diverse Image Synthesis", eq. 3), to be minimised by the generator.

    For two latents ``z_1, z_2`` under the same condition, the ratio ``r = d_I(G(c, z_1),
    G(c, z_2)) / d_z(z_1, z_2)`` (mean absolute differences) should be large: a generator that
    ignores ``z`` (conditional mode collapse) has ``r = 0``. The loss is ``mean_i 1 / (r_i +
    eps)``, per sample ``i`` (so that it is the same on 1 or N devices).

    Args:
      images_1, images_2: float32 ``[B, H, W, C]`` images of the same conditions.
      z_1, z_2: float32 ``[B, Z]`` their latents.
      eps: keeps the loss finite at ``r = 0``.

    Returns:
      Scalar loss and ``{"mode_seeking_ratio": mean r}``.
    """
    d_images = jnp.mean(jnp.abs(images_1 - images_2), axis=tuple(range(1, images_1.ndim)))
    ratio = d_images / jnp.mean(jnp.abs(z_1 - z_2), axis=-1)
    return jnp.mean(1.0 / (ratio + eps)), {"mode_seeking_ratio": jnp.mean(ratio)}


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


def matching_aware_d_loss(
    real_logits: jax.Array, fake_logits: jax.Array, mismatched_logits: jax.Array, loss: str
) -> tuple[jax.Array, Aux]:
    """Matching-aware discriminator loss, GAN-CLS (Reed et al. 2016, "Generative Adversarial Text
    to Image Synthesis", §4.1, Algorithm 1).

    Real images with their own text count as real; generated images with the text and real images
    with a mismatched text both count as fake, each with weight 1/2 (Alg. 1, line 10), so D must
    judge whether image and text match, not only whether the image looks real:
    ``L_D = l_real(D(x, t)) + (l_fake(D(G(z, t), t)) + l_fake(D(x, t̂))) / 2``.

    Args:
      real_logits: float32 ``[B]`` ``D(x, t)`` on real images with matching text.
      fake_logits: float32 ``[B]`` ``D(G(z, t), t)``.
      mismatched_logits: float32 ``[B]`` ``D(x, t̂)`` on real images with another caption.
      loss: ``"hinge"`` or ``"non_saturating"``: the per-term losses ``l_real``, ``l_fake``.

    Returns:
      Scalar loss and ``{"d_real", "d_fake", "d_mismatched"}`` mean logits.

    Raises:
      ConfigError: for another ``loss``.
    """
    d_loss, _ = gan_losses(loss)
    # A logit of +inf (as real) or -inf (as fake) makes that term of d_loss exactly 0.
    sure_real, sure_fake = jnp.full_like(real_logits, jnp.inf), jnp.full_like(real_logits, -jnp.inf)
    real_term = d_loss(real_logits, sure_fake)[0]
    fake_term = d_loss(sure_real, fake_logits)[0]
    mismatch_term = d_loss(sure_real, mismatched_logits)[0]
    return real_term + 0.5 * (fake_term + mismatch_term), {
        "d_real": jnp.mean(real_logits),
        "d_fake": jnp.mean(fake_logits),
        "d_mismatched": jnp.mean(mismatched_logits),
    }


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
