"""Family objectives for ``lwgen.train.steps.adversarial_step``: where ``z`` and the "real" images
come from and which losses apply."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections

from lwgen.losses.gan import gan_losses

Batch = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class GANObjective:
    """Conditional GAN training: ``z ~ N(0, I)``, real images and labels from the data set.

    Attributes:
      loss: ``"hinge"`` or ``"non_saturating"`` (see ``lwgen.losses.gan``).
      r1_weight: ``gamma`` of the R1 penalty (Mescheder et al. 2018 eq. 9); 0 disables it.
    """

    loss: str = "hinge"
    r1_weight: float = 0.0
    g_uses_real: bool = False

    def inputs(self, batch: Batch, keys: jax.Array, latent_dim: int):
        """``z ~ N(0, I)`` from the per-sample ``keys``; labels and real images from ``batch``."""
        z = jax.vmap(lambda k: jax.random.normal(k, (latent_dim,), jnp.float32))(keys)
        return z, batch["label"], batch["image"]

    def d_loss(self, real_logits, fake_logits):
        return gan_losses(self.loss)[0](real_logits, fake_logits)

    def g_loss(self, fake_logits, fake_features, real_features, fake, real):
        return gan_losses(self.loss)[1](fake_logits)


def make_objective(config: ml_collections.ConfigDict):
    """The objective of ``config.model.family``.

    Raises:
      ValueError: for an unknown family.
    """
    family = config.model.family
    if family == "dcgan":
        gan_losses(config.train.loss)
        return GANObjective(config.train.loss, config.train.r1_weight)
    raise ValueError(f"model.family {family!r} is not one of ['dcgan']")
