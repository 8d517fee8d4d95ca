"""Objectives of the conditional-GAN families (``conditional_gan.adversarial_step``): where ``z``
and the "real" images come from and which losses apply.

``dcgan`` trains a conditional GAN on real data (`GANObjective`); ``tinygan`` distils a teacher
into a student from a distillation set (`DistillationObjective`, TinyGAN, Chang & Lu 2020, §3).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import jax
import jax.numpy as jnp
import ml_collections

from lwgen.errors import ConfigError
from lwgen.losses import distillation
from lwgen.losses.gan import gan_losses

Batch = dict[str, jax.Array]


class Objective(Protocol):
    """What a conditional-GAN family plugs into ``adversarial_step``."""

    r1_weight: float
    g_uses_real: bool

    def inputs(self, batch: Batch, keys: jax.Array, latent_dim: int) -> tuple[jax.Array, ...]:
        """Returns ``(z [b, latent_dim], labels int32 [b], real images [b, H, W, C])``; ``keys``
        holds one PRNG key per sample of this device's shard."""

    def d_loss(self, real_logits: jax.Array, fake_logits: jax.Array):
        """Discriminator loss ``(scalar, aux)``."""

    def g_loss(self, fake_logits, fake_features, real_features, fake, real):
        """Generator loss ``(scalar, aux)``; ``real_features`` is None unless ``g_uses_real``."""


def normal_latents(keys: jax.Array, latent_dim: int) -> jax.Array:
    """``z ~ N(0, I)``: float32 ``[len(keys), latent_dim]``, one row per PRNG key."""
    return jax.vmap(lambda k: jax.random.normal(k, (latent_dim,), jnp.float32))(keys)


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
        return normal_latents(keys, latent_dim), batch["label"], batch["image"]

    def d_loss(self, real_logits, fake_logits):
        return gan_losses(self.loss)[0](real_logits, fake_logits)

    def g_loss(self, fake_logits, fake_features, real_features, fake, real):
        return gan_losses(self.loss)[1](fake_logits)


@dataclasses.dataclass(frozen=True)
class DistillationObjective:
    """Black-box distillation after TinyGAN (Chang & Lu 2020, §3, "Full Objective").

    Batches come from a distillation set (data source ``"distill"``): ``z`` and ``label`` are the
    teacher's inputs and ``image`` is the teacher's output ``T(z, y)``, which the step treats as
    the "real" image. The discriminator learns teacher vs. student (``L_KD_D``); the student
    minimises ``L_S`` (pixel, adversarial and feature-level distillation through the
    discriminator's block features, see ``lwgen.losses.distillation``).

    With a real-data weight on, the batch also holds ``real_image``/``real_label`` (set
    ``data.real_source``): `inputs` appends ``b`` real images and ``b`` student inputs
    ``(z' ~ N(0, I), real labels)`` to the ``b`` teacher samples, so every array the step
    passes back has ``2b`` rows, teacher half first; the losses split them again.

    Attributes:
      weights: the loss weights.
      r1_weight: ``gamma`` of the R1 penalty on the "real" (teacher and real) images; 0 disables.
    """

    weights: distillation.DistillWeights
    r1_weight: float = 0.0
    g_uses_real: bool = True

    def inputs(self, batch: Batch, keys: jax.Array, latent_dim: int):
        """``(z, labels, real)`` of the teacher samples, plus the real-data half if used.

        Raises:
          ValueError: if ``batch["z"]`` is not ``[b, latent_dim]`` or the real-data half is on
            and the batch has no ``real_image``.
        """
        z, labels, real = batch["z"], batch["label"], batch["image"]
        if z.shape[-1] != latent_dim:
            raise ConfigError(
                f"the distillation set's z has {z.shape[-1]} dimensions, but the student's "
                f"model.generator.latent_dim is {latent_dim}"
            )
        if not self.weights.uses_real_data:
            return z, labels, real
        if "real_image" not in batch:
            raise ConfigError("distill.real_adv/d_real_adv > 0 needs data.real_source")
        z_real = normal_latents(keys, latent_dim)
        return (
            jnp.concatenate([z, z_real]),
            jnp.concatenate([labels, batch["real_label"]]),
            jnp.concatenate([real, batch["real_image"]]),
        )

    def _halves(self, x):
        """``(teacher half, real-data half)`` of ``x``; the second is None without real data."""
        return tuple(jnp.split(x, 2)) if self.weights.uses_real_data else (x, None)

    def d_loss(self, real_logits, fake_logits):
        """``L_D = L_KD_D + d_real_adv · L_GAN_D`` (TinyGAN §3)."""
        teacher, real = self._halves(real_logits)
        student, real_student = self._halves(fake_logits)
        return distillation.student_discriminator_loss(
            teacher, student, self.weights, real, real_student
        )

    def g_loss(self, fake_logits, fake_features, real_features, fake, real):
        """``L_S = feat · L_KD_feat + pixel · L_KD_pix + adv · L_KD_S + real_adv · L_GAN_S``."""
        student, real_student = self._halves(fake_logits)
        return distillation.student_generator_loss(
            self._halves(fake)[0],
            self._halves(real)[0],
            student,
            [self._halves(f)[0] for f in fake_features],
            [self._halves(f)[0] for f in real_features],
            self.weights,
            real_student,
        )


def distill_config(**weights: float) -> ml_collections.ConfigDict:
    """A ``config.distill`` group: the `DistillWeights` defaults, updated with ``weights``.

    Raises:
      ValueError: on a name that is not a `DistillWeights` field or a bad weight.
    """
    defaults = dataclasses.asdict(distillation.as_weights(weights))
    defaults["feature_layer_weights"] = ml_collections.FieldReference(
        defaults["feature_layer_weights"], field_type=tuple
    )
    return ml_collections.ConfigDict(defaults)


def distill_weights(config: ml_collections.ConfigDict) -> distillation.DistillWeights:
    """The ``config.distill`` group as `DistillWeights`, checked against the rest of the config.

    Raises:
      ValueError: if the group is missing, ``data.source`` is not ``"distill"``, the group has
        unknown keys or bad weights, has
        ``feature_layer_weights`` of another length than ``model.discriminator.num_blocks``,
        turns a real-data term on without ``data.real_source``, or ``train.loss`` is not
        ``"hinge"`` (TinyGAN's losses are hinge losses).
    """
    if "distill" not in config:
        raise ConfigError("model.family 'tinygan' needs a config.distill group of loss weights")
    if config.data.source != "distill":
        raise ConfigError(
            f"model.family 'tinygan' trains on a distillation set (data.source='distill'), "
            f"got data.source={config.data.source!r}"
        )
    if config.train.loss != "hinge":
        raise ConfigError(
            f"model.family 'tinygan' uses hinge losses; got train.loss={config.train.loss!r}"
        )
    weights = distillation.as_weights(config.distill.to_dict())
    alphas, num_blocks = weights.feature_layer_weights, config.model.discriminator.num_blocks
    if alphas is not None and len(alphas) != num_blocks:
        raise ConfigError(
            f"distill.feature_layer_weights has {len(alphas)} entries, expected one per "
            f"discriminator block (model.discriminator.num_blocks={num_blocks})"
        )
    if weights.uses_real_data and not config.data.get("real_source", None):
        raise ConfigError("distill.real_adv/d_real_adv > 0 needs data.real_source (e.g. 'digits')")
    return weights
