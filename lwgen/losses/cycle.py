"""CycleGAN losses and the history pool of generated images.

Every loss is pure and returns ``(scalar, aux_dict)``. Images are float32 ``[B, H, W, C]`` in
``[-1, 1]``; discriminator outputs are PatchGAN logits ``[B, h, w, 1]`` (any shape works).

* Least-squares GAN (Mao et al. 2017, "Least Squares Generative Adversarial Networks", eq. 2 with
  ``a = 0, b = c = 1``), as CycleGAN uses it (Zhu et al. 2017, §4 "Training details", eq. 1 replaced
  by the least-squares objective; the discriminator loss halved).
* Cycle consistency (Zhu et al. 2017, eq. 2): L1 between an image and its round trip.
* Identity (Zhu et al. 2017, §5.2 "photo generation from paintings"): L1 between a target-domain
  image and its translation.
* The image pool (Shrivastava et al. 2017, "Learning from Simulated and Unsupervised Images
  through Adversarial Training", §2.3; Zhu et al. 2017 §4): the discriminators see a history of
  50 generated images per direction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

Aux = dict[str, jax.Array]
POOL_SIZE = 50


def lsgan_d_loss(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Least-squares discriminator loss (Mao et al. 2017, eq. 2, ``a = 0``, ``b = 1``), halved as
    in CycleGAN (Zhu et al. 2017, §4: "we divide the objective by 2 while optimizing D").

    ``L_D = ½ (E[(D(y) - 1)²] + E[D(G(x))²])``.

    Args:
      real_logits: float32 ``D`` on real target-domain images, any shape.
      fake_logits: float32 ``D`` on generated images, any shape.

    Returns:
      Scalar loss and ``{"d_real": mean real logit, "d_fake": mean fake logit}``.
    """
    loss = 0.5 * (jnp.mean((real_logits - 1.0) ** 2) + jnp.mean(fake_logits**2))
    return loss, {"d_real": jnp.mean(real_logits), "d_fake": jnp.mean(fake_logits)}


def lsgan_g_loss(fake_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Least-squares generator loss (Mao et al. 2017, eq. 2, ``c = 1``): ``E[(D(G(x)) - 1)²]``.

    Args:
      fake_logits: float32 ``D`` on generated images, any shape.

    Returns:
      Scalar loss and an empty aux dict.
    """
    return jnp.mean((fake_logits - 1.0) ** 2), {}


def cycle_consistency_loss(
    real_a: jax.Array, reconstructed_a: jax.Array, real_b: jax.Array, reconstructed_b: jax.Array
) -> tuple[jax.Array, Aux]:
    """Cycle-consistency loss (Zhu et al. 2017, eq. 2), without its weight λ.

    ``L_cyc = E_x[‖F(G(x)) - x‖₁] + E_y[‖G(F(y)) - y‖₁]``, each norm the mean absolute error
    over pixels.

    Args:
      real_a, reconstructed_a: float32 ``[B, H, W, C]`` images ``x`` and ``F(G(x))``.
      real_b, reconstructed_b: float32 ``[B, H, W, C]`` images ``y`` and ``G(F(y))``.

    Returns:
      Scalar loss and ``{"cycle_a", "cycle_b"}`` (the two terms).
    """
    cycle_a = jnp.mean(jnp.abs(reconstructed_a - real_a))
    cycle_b = jnp.mean(jnp.abs(reconstructed_b - real_b))
    return cycle_a + cycle_b, {"cycle_a": cycle_a, "cycle_b": cycle_b}


def identity_loss(
    real_a: jax.Array, same_a: jax.Array, real_b: jax.Array, same_b: jax.Array
) -> tuple[jax.Array, Aux]:
    """Identity-mapping loss (Zhu et al. 2017, §5.2), without its weight (0.5 λ in the paper).

    ``L_identity = E_y[‖G(y) - y‖₁] + E_x[‖F(x) - x‖₁]``: a generator fed an image of its own
    target domain should leave it unchanged.

    Args:
      real_a, same_a: float32 ``[B, H, W, C]`` images ``x`` (domain A) and ``F(x)``.
      real_b, same_b: float32 ``[B, H, W, C]`` images ``y`` (domain B) and ``G(y)``.

    Returns:
      Scalar loss and ``{"identity_a", "identity_b"}``.
    """
    identity_a = jnp.mean(jnp.abs(same_a - real_a))
    identity_b = jnp.mean(jnp.abs(same_b - real_b))
    return identity_a + identity_b, {"identity_a": identity_a, "identity_b": identity_b}


def empty_pool(image_shape: tuple[int, int, int], size: int = POOL_SIZE) -> dict[str, jax.Array]:
    """An empty image pool: ``{"images": f32 [size, H, W, C] zeros, "count": int32 0}``."""
    return {"images": jnp.zeros((size, *image_shape), jnp.float32), "count": jnp.int32(0)}


def pool_query(
    pool: dict[str, jax.Array], images: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Passes a batch of generated images through the history pool (Shrivastava et al. 2017,
    §2.3; the rule of the CycleGAN reference implementation).

    Images are taken in batch order. While the pool holds fewer than ``size`` images, each image
    is stored and returned itself. Once full, each image is, with probability ½, swapped for a
    uniformly chosen stored image (the stored one is returned, the new one takes its slot), and
    otherwise returned itself, leaving the pool unchanged.

    Args:
      pool: ``{"images": f32 [size, H, W, C], "count": int32}`` (`empty_pool`).
      images: float32 ``[B, H, W, C]`` generated images.
      key: PRNG key of this query; the draws for image ``i`` use ``fold_in(key, i)``.

    Returns:
      ``(images for the discriminator f32 [B, H, W, C], the updated pool)``.
    """
    size = pool["images"].shape[0]

    def one(carry, inputs):
        stored, count = carry
        index, image = inputs
        swap_key, slot_key = jax.random.split(jax.random.fold_in(key, index))
        filling = count < size
        swap = jnp.logical_and(~filling, jax.random.uniform(swap_key) < 0.5)
        slot = jnp.where(filling, count, jax.random.randint(slot_key, (), 0, size))
        old = stored[slot]
        out = jnp.where(swap, old, image)
        stored = lax.cond(filling | swap, lambda s: s.at[slot].set(image), lambda s: s, stored)
        return (stored, count + filling.astype(count.dtype)), out

    indices = jnp.arange(images.shape[0])
    (stored, count), out = lax.scan(one, (pool["images"], pool["count"]), (indices, images))
    return out, {"images": stored, "count": count}
