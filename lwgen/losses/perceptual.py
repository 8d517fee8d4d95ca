"""Perceptual losses of neural style transfer on frozen VGG features.

Gatys, Ecker & Bethge 2016, "Image Style Transfer Using Convolutional Neural Networks" (CVPR):
content loss (eq. 1), Gram matrices (eq. 3), per-layer style loss (eq. 4) and its weighted sum
over layers (eq. 5); Johnson, Alahi & Fei-Fei 2016, "Perceptual Losses for Real-Time Style
Transfer and Super-Resolution" (ECCV), §3.2: the same losses normalised by layer size (eqs. 2–3,
5) and total-variation regularisation (§3.3, after Mahendran & Vedaldi 2015). Each function is
pure and returns one value per image; `perceptual_loss` combines them as ``(scalar, aux)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from lwgen.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class PerceptualWeights:
    """Layer choice and weights of `perceptual_loss`.

    Attributes:
      content_layer: VGG layer of the content loss (Johnson et al. use ``relu2_2``).
      style_layers: VGG layers of the style loss.
      style_layer_weights: ``w_l`` of Gatys eq. 5, one per style layer.
      content_weight: ``α`` of Gatys eq. 7.
      style_weight: ``β`` of Gatys eq. 7.
      tv_weight: weight of the total-variation term (Johnson §3.3).
    """

    content_layer: str = "relu2_2"
    style_layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0)
    content_weight: float = 1.0
    style_weight: float = 1.0
    tv_weight: float = 0.0

    def __post_init__(self):
        if len(self.style_layer_weights) != len(self.style_layers):
            raise ConfigError(
                f"loss.style_layer_weights has {len(self.style_layer_weights)} entries, "
                f"expected one per style layer {self.style_layers}"
            )
        for name in ("content_weight", "style_weight", "tv_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")

    @property
    def layers(self) -> tuple[str, ...]:
        """Every VGG layer the losses read (content layer first)."""
        return tuple(dict.fromkeys((self.content_layer, *self.style_layers)))


def as_weights(group: Mapping) -> PerceptualWeights:
    """A config ``loss`` group as `PerceptualWeights` (tuples from lists).

    Raises:
      ConfigError: on an unknown key or bad weights.
    """
    known = {f.name for f in dataclasses.fields(PerceptualWeights)}
    unknown = set(group) - known
    if unknown:
        raise ConfigError(f"unknown loss keys {sorted(unknown)}; known: {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in group.items()}
    return PerceptualWeights(**values)


def gram_matrix(features: jax.Array) -> jax.Array:
    """Gram matrices of feature maps, ``G_cd = Σ_hw F_hwc F_hwd / (H W C)``.

    Gatys eq. 3 (inner products between the vectorised feature maps), normalised by the layer
    size as in Johnson eq. 3 so that layers and image sizes are comparable.

    Args:
      features: float32 ``[B, H, W, C]``.

    Returns:
      float32 ``[B, C, C]``, symmetric.
    """
    _, h, w, c = features.shape
    return jnp.einsum("bhwc,bhwd->bcd", features, features) / (h * w * c)


def content_loss(features: jax.Array, target: jax.Array) -> jax.Array:
    """Squared feature distance per element, ``mean_hwc (F - P)²`` per image.

    Gatys eq. 1 (``½ Σ (F - P)²``) normalised by the layer size (Johnson eq. 2).

    Args:
      features: float32 ``[B, H, W, C]`` of the generated images.
      target: float32 ``[B, H, W, C]`` of the content images.

    Returns:
      float32 ``[B]``.
    """
    return jnp.mean(jnp.square(features - target), axis=(1, 2, 3))


def style_loss(
    grams: Sequence[jax.Array], target_grams: Sequence[jax.Array], layer_weights: Sequence[float]
) -> jax.Array:
    """Weighted squared Frobenius distance of Gram matrices, ``Σ_l w_l ‖G_l - A_l‖²_F``.

    Gatys eqs. 4–5 (``E_l`` and ``L_style = Σ_l w_l E_l``), with the ``1 / (4 N_l² M_l²)`` of
    eq. 4 replaced by the layer-size normalisation of `gram_matrix` (Johnson eq. 5).

    Args:
      grams: per layer, float32 ``[B, C_l, C_l]`` of the generated images.
      target_grams: per layer, float32 ``[B, C_l, C_l]`` of each image's style.
      layer_weights: ``w_l``, one per layer.

    Returns:
      float32 ``[B]``.
    """
    per_layer = [
        w * jnp.sum(jnp.square(g - a), axis=(1, 2))
        for g, a, w in zip(grams, target_grams, layer_weights, strict=True)
    ]
    return sum(per_layer)


def total_variation_loss(images: jax.Array) -> jax.Array:
    """Mean squared difference of vertical and horizontal neighbours per image (Johnson §3.3,
    total-variation regulariser ``R_V^β`` of Mahendran & Vedaldi 2015 eq. 8 with ``β = 2``).

    Args:
      images: float32 ``[B, H, W, C]``.

    Returns:
      float32 ``[B]``.
    """
    dy = jnp.mean(jnp.square(images[:, 1:] - images[:, :-1]), axis=(1, 2, 3))
    dx = jnp.mean(jnp.square(images[:, :, 1:] - images[:, :, :-1]), axis=(1, 2, 3))
    return dy + dx


def perceptual_loss(
    features: Mapping[str, jax.Array],
    content_features: jax.Array,
    target_grams: Sequence[jax.Array],
    images: jax.Array,
    weights: PerceptualWeights,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """``α L_content + β L_style + tv · L_TV`` averaged over the batch (Gatys eq. 7; Johnson §3).

    Args:
      features: VGG features of the generated ``images`` by layer (`weights.layers`).
      content_features: ``[B, H, W, C]`` features of the content images at
        ``weights.content_layer``.
      target_grams: per style layer, ``[B, C, C]`` Grams of each image's style.
      images: float32 ``[B, H, W, 3]`` generated images in ``[-1, 1]``.
      weights: the layers and weights.

    Returns:
      ``(scalar loss, {"content_loss", "style_loss", "tv_loss"})`` (unweighted batch means).
    """
    content = content_loss(features[weights.content_layer], content_features)
    grams = [gram_matrix(features[layer]) for layer in weights.style_layers]
    style = style_loss(grams, target_grams, weights.style_layer_weights)
    tv = total_variation_loss(images)
    aux = {"content_loss": content.mean(), "style_loss": style.mean(), "tv_loss": tv.mean()}
    loss = (
        weights.content_weight * aux["content_loss"]
        + weights.style_weight * aux["style_loss"]
        + weights.tv_weight * aux["tv_loss"]
    )
    return loss, aux


@dataclasses.dataclass(frozen=True)
class DistillWeights:
    """Weights of `distillation_loss`.

    Attributes:
      pixel: weight of the pixel term (mean squared error to the teacher's image).
      perceptual: weight of the feature term (content loss to the teacher's features).
      layers: VGG layers of the feature term.
    """

    pixel: float = 1.0
    perceptual: float = 1.0
    layers: tuple[str, ...] = ("relu1_2", "relu2_2", "relu3_3")


def distillation_loss(
    images: jax.Array,
    features: Mapping[str, jax.Array],
    teacher_images: jax.Array,
    teacher_features: Mapping[str, jax.Array],
    weights: DistillWeights,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Student-to-teacher distillation of a stylizer: pixel MSE plus the content loss (Johnson
    eq. 2) between the student's and the teacher's VGG features at ``weights.layers`` (the
    perceptual distillation of knowledge distillation for image-to-image networks, e.g. TinyGAN,
    Chang & Lu 2020 §3, with VGG in place of the discriminator's features).

    Args:
      images: float32 ``[B, H, W, 3]`` student outputs in ``[-1, 1]``.
      features: VGG features of ``images`` by layer.
      teacher_images: float32 ``[B, H, W, 3]`` teacher outputs for the same inputs.
      teacher_features: VGG features of ``teacher_images`` by layer.
      weights: the term weights and layers.

    Returns:
      ``(scalar, {"pixel_loss", "feature_loss"})`` (unweighted batch means).
    """
    pixel = jnp.mean(jnp.square(images - teacher_images))
    feature = sum(
        content_loss(features[layer], teacher_features[layer]).mean() for layer in weights.layers
    )
    loss = weights.pixel * pixel + weights.perceptual * feature
    return loss, {"pixel_loss": pixel, "feature_loss": feature}
