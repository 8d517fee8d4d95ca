"""Black-box GAN distillation losses after TinyGAN (Chang & Lu 2020, "TinyGAN: Distilling BigGAN
for Conditional Image Generation", ACCV, §3).

A student generator ``S`` learns from a data set of teacher triples ``(z, y, T(z, y))``; the
teacher ``T`` itself is never called during training. The student objective (TinyGAN §3, "Full
Objective") is

    L_S = feat · L_KD_feat + pixel · L_KD_pix + adv · L_KD_S + real_adv · L_GAN_S

and the discriminator objective is

    L_D = L_KD_D + d_real_adv · L_GAN_D.

The paper writes ``λ1 … λ4`` for ``pixel``, ``adv``, ``real_adv`` and ``d_real_adv``; the authors'
released code (github.com/terarachang/ACCV_TinyGAN, ``solver.py``) trains BigGAN's student with
``pixel = 0.2`` (decayed per epoch), ``adv = 0.01``, ``real_adv = 0.002`` and ``d_real_adv = 0.2``.

Every function is pure and takes precomputed discriminator outputs (arrays, not modules), so a
data-parallel train step computes ``D(x, y, return_features=True)`` once and passes the results
here. Images are float32 ``[B, H, W, C]`` NHWC in ``[-1, 1]``; logits are float32 ``[B]``;
features are lists of float32 ``[B, H_i, W_i, C_i]`` discriminator block outputs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from lwgen.losses.gan import d_hinge_loss, g_hinge_loss

Aux = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class DistillWeights:
    """Weights of the TinyGAN loss terms (TinyGAN §3, "Full Objective").

    Attributes:
      pixel: ``λ1``, weight of the pixel-level distillation loss ``L_KD_pix``.
      adv: ``λ2``, weight of the student's adversarial distillation loss ``L_KD_S``.
      feat: weight of the feature-level distillation loss ``L_KD_feat`` (1 in the paper).
      real_adv: ``λ3``, weight of the student's adversarial loss on real data ``L_GAN_S``.
      d_real_adv: ``λ4``, weight of the discriminator's loss on real data ``L_GAN_D``. With both
        real-data weights 0 the distillation is purely black-box and needs no real images.
      feature_layer_weights: ``α_i`` per discriminator block, shallow to deep; ``None`` uses
        ``α_i = 2^(i - n + 1)`` (the deepest block 1, each shallower one half the next), after
        the increasing per-layer weights of the authors' released code.
    """

    pixel: float = 1.0
    adv: float = 1.0
    feat: float = 1.0
    real_adv: float = 0.0
    d_real_adv: float = 0.0
    feature_layer_weights: tuple[float, ...] | None = None

    def __post_init__(self):
        for field in ("pixel", "adv", "feat", "real_adv", "d_real_adv"):
            value = getattr(self, field)
            if not (isinstance(value, int | float) and value >= 0.0 and math.isfinite(value)):
                raise ValueError(
                    f"distillation weight {field} must be a finite number >= 0, got {value!r}"
                )
        if not (self.pixel or self.adv or self.feat or self.real_adv):
            raise ValueError("all student loss weights (pixel, adv, feat, real_adv) are 0")
        if self.feature_layer_weights is not None:
            alphas = tuple(float(a) for a in self.feature_layer_weights)
            if not alphas or not all(a >= 0.0 and math.isfinite(a) for a in alphas):
                raise ValueError(
                    "feature_layer_weights must be finite numbers >= 0, got "
                    f"{self.feature_layer_weights!r}"
                )
            object.__setattr__(self, "feature_layer_weights", alphas)

    @property
    def uses_real_data(self) -> bool:
        """Whether a real-data term is on (the batches then need real images)."""
        return bool(self.real_adv or self.d_real_adv)


def as_weights(weights: DistillWeights | Mapping) -> DistillWeights:
    """Returns ``weights`` as `DistillWeights`, converting a mapping (e.g. a config group).

    Raises:
      ValueError: if the mapping has a key that is not a `DistillWeights` field.
    """
    if isinstance(weights, DistillWeights):
        return weights
    fields = {f.name for f in dataclasses.fields(DistillWeights)}
    unknown = sorted(set(weights) - fields)
    if unknown:
        raise ValueError(
            f"unknown distillation weights {unknown}; expected some of {sorted(fields)}"
        )
    return DistillWeights(**dict(weights))


def pixel_distillation_loss(
    student_images: jax.Array, teacher_images: jax.Array
) -> tuple[jax.Array, Aux]:
    """Pixel-level distillation loss ``L_KD_pix`` (TinyGAN §3, pixel-level distillation).

    ``L_KD_pix = E_{z, y}[ ||T(z, y) - S(z, y)||_1 ]``, here the mean absolute difference over
    batch and pixels.

    Args:
      student_images: float32 ``[B, H, W, C]`` ``S(z, y)`` in ``[-1, 1]``.
      teacher_images: float32 ``[B, H, W, C]`` ``T(z, y)`` for the same ``(z, y)``; treated as a
        constant target.

    Returns:
      Scalar loss and ``{"kd_pix": loss}``.

    Raises:
      ValueError: if the shapes differ.
    """
    if student_images.shape != teacher_images.shape:
        raise ValueError(
            f"student images {student_images.shape} and teacher images {teacher_images.shape} "
            "must have the same shape"
        )
    loss = jnp.mean(jnp.abs(student_images - jax.lax.stop_gradient(teacher_images)))
    return loss, {"kd_pix": loss}


def default_feature_layer_weights(num_layers: int) -> tuple[float, ...]:
    """``α_i = 2^(i - num_layers + 1)`` for ``i = 0 .. num_layers - 1`` (deepest block gets 1)."""
    return tuple(2.0 ** (i - num_layers + 1) for i in range(num_layers))


def feature_distillation_loss(
    student_features: Sequence[jax.Array],
    teacher_features: Sequence[jax.Array],
    layer_weights: Sequence[float] | None = None,
) -> tuple[jax.Array, Aux]:
    """Feature-level distillation loss ``L_KD_feat`` (TinyGAN §3, feature-level distillation).

    ``L_KD_feat = E_{z, y}[ Σ_i α_i ||D_i(T(z, y), y) - D_i(S(z, y), y)||_1 ]`` where ``D_i`` is
    the ``i``-th block output of the discriminator; each L1 term is a mean over batch and
    feature elements.

    Args:
      student_features: float32 ``[B, H_i, W_i, C_i]`` block outputs of ``D`` on ``S(z, y)``.
      teacher_features: the same blocks of ``D`` on ``T(z, y)``; treated as constant targets.
      layer_weights: ``α_i`` per block; ``None`` uses `default_feature_layer_weights`.

    Returns:
      Scalar loss and ``{"kd_feat": loss, "kd_feat_<i>": unweighted L1 of block i}``.

    Raises:
      ValueError: if the lists are empty or their lengths, the per-block shapes or the number of
        ``layer_weights`` disagree.
    """
    n = len(student_features)
    if n == 0 or n != len(teacher_features):
        raise ValueError(
            f"need equally many (>= 1) student and teacher features, got {n} and "
            f"{len(teacher_features)}"
        )
    alphas = default_feature_layer_weights(n) if layer_weights is None else tuple(layer_weights)
    if len(alphas) != n:
        raise ValueError(f"layer_weights has {len(alphas)} entries, expected one per block ({n})")
    aux = {}
    loss = jnp.zeros((), jnp.float32)
    for i, (s, t, alpha) in enumerate(zip(student_features, teacher_features, alphas, strict=True)):
        if s.shape != t.shape:
            raise ValueError(f"feature block {i}: student {s.shape} != teacher {t.shape}")
        aux[f"kd_feat_{i}"] = jnp.mean(jnp.abs(s - jax.lax.stop_gradient(t)))
        loss = loss + alpha * aux[f"kd_feat_{i}"]
    return loss, {"kd_feat": loss, **aux}


def kd_discriminator_loss(
    teacher_logits: jax.Array, student_logits: jax.Array
) -> tuple[jax.Array, Aux]:
    """Adversarial distillation loss of the discriminator ``L_KD_D`` (TinyGAN §3, adversarial
    distillation): a hinge loss in which teacher images play the real images.

    ``L_KD_D = E[max(0, 1 - D(T(z, y), y))] + E[max(0, 1 + D(S(z, y), y))]``.

    Args:
      teacher_logits: float32 ``[B]`` ``D`` on teacher images.
      student_logits: float32 ``[B]`` ``D`` on student images for the same ``(z, y)``.

    Returns:
      Scalar loss and ``{"kd_d": loss, "d_teacher": mean teacher logit, "d_student": mean
      student logit}``.
    """
    loss, aux = d_hinge_loss(teacher_logits, student_logits)
    return loss, {"kd_d": loss, "d_teacher": aux["d_real"], "d_student": aux["d_fake"]}


def kd_generator_loss(student_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Adversarial distillation loss of the student ``L_KD_S`` (TinyGAN §3, adversarial
    distillation): ``L_KD_S = -E_{z, y}[D(S(z, y), y)]``.

    Args:
      student_logits: float32 ``[B]`` ``D`` on student images of the distillation batch.

    Returns:
      Scalar loss and ``{"kd_s": loss}``.
    """
    loss, _ = g_hinge_loss(student_logits)
    return loss, {"kd_s": loss}


def real_discriminator_loss(
    real_logits: jax.Array, student_logits: jax.Array
) -> tuple[jax.Array, Aux]:
    """Discriminator loss on real data ``L_GAN_D`` (TinyGAN §3, learning from the real
    distribution): ``E_{x, y}[max(0, 1 - D(x, y))] + E_{z, y}[max(0, 1 + D(S(z, y), y))]``.

    Args:
      real_logits: float32 ``[B]`` ``D`` on real images ``x`` with their labels ``y``.
      student_logits: float32 ``[B]`` ``D`` on student images generated for those labels.

    Returns:
      Scalar loss and ``{"gan_d": loss, "d_real": mean real logit}``.
    """
    loss, aux = d_hinge_loss(real_logits, student_logits)
    return loss, {"gan_d": loss, "d_real": aux["d_real"]}


def real_generator_loss(student_logits: jax.Array) -> tuple[jax.Array, Aux]:
    """Student loss on real data ``L_GAN_S`` (TinyGAN §3, learning from the real distribution):
    ``L_GAN_S = -E_{z, y}[D(S(z, y), y)]`` with ``y`` drawn from the real data's labels.

    Args:
      student_logits: float32 ``[B]`` ``D`` on student images generated for real labels.

    Returns:
      Scalar loss and ``{"gan_s": loss}``.
    """
    loss, _ = g_hinge_loss(student_logits)
    return loss, {"gan_s": loss}


def _require(array: jax.Array | None, name: str, weight: str) -> jax.Array:
    if array is None:
        raise ValueError(f"{name} is required when the {weight} weight is > 0")
    return array


def student_generator_loss(
    student_images: jax.Array,
    teacher_images: jax.Array,
    student_logits: jax.Array,
    student_features: Sequence[jax.Array],
    teacher_features: Sequence[jax.Array],
    weights: DistillWeights | Mapping,
    real_student_logits: jax.Array | None = None,
) -> tuple[jax.Array, Aux]:
    """The student objective ``L_S`` (TinyGAN §3, "Full Objective").

    ``L_S = feat · L_KD_feat + pixel · L_KD_pix + adv · L_KD_S + real_adv · L_GAN_S``. Terms with
    weight 0 are not computed (their inputs may then be empty).

    Args:
      student_images: float32 ``[B, H, W, C]`` ``S(z, y)`` for the batch's ``(z, y)``.
      teacher_images: float32 ``[B, H, W, C]`` ``T(z, y)`` from the distillation set.
      student_logits: float32 ``[B]`` ``D(S(z, y), y)``.
      student_features: ``D``'s block outputs on ``S(z, y)``.
      teacher_features: ``D``'s block outputs on ``T(z, y)``.
      weights: `DistillWeights` or a mapping of its fields.
      real_student_logits: float32 ``[B']`` ``D(S(z', y'), y')`` for labels ``y'`` of a real
        batch; required when ``weights.real_adv > 0``.

    Returns:
      Scalar loss and the aux dicts of the computed terms.

    Raises:
      ValueError: on bad weights, mismatched shapes, or missing ``real_student_logits``.
    """
    w = as_weights(weights)
    terms = []
    if w.feat:
        feat = feature_distillation_loss(
            student_features, teacher_features, w.feature_layer_weights
        )
        terms.append((w.feat, feat))
    if w.pixel:
        terms.append((w.pixel, pixel_distillation_loss(student_images, teacher_images)))
    if w.adv:
        terms.append((w.adv, kd_generator_loss(student_logits)))
    if w.real_adv:
        logits = _require(real_student_logits, "real_student_logits", "real_adv")
        terms.append((w.real_adv, real_generator_loss(logits)))
    return _weighted_sum(terms)


def student_discriminator_loss(
    teacher_logits: jax.Array,
    student_logits: jax.Array,
    weights: DistillWeights | Mapping,
    real_logits: jax.Array | None = None,
    real_student_logits: jax.Array | None = None,
) -> tuple[jax.Array, Aux]:
    """The discriminator objective ``L_D`` (TinyGAN §3, "Full Objective").

    ``L_D = L_KD_D + d_real_adv · L_GAN_D``.

    Args:
      teacher_logits: float32 ``[B]`` ``D(T(z, y), y)``.
      student_logits: float32 ``[B]`` ``D(S(z, y), y)``.
      weights: `DistillWeights` or a mapping of its fields (only ``d_real_adv`` is used).
      real_logits: float32 ``[B']`` ``D(x, y')`` on a real batch; required when
        ``weights.d_real_adv > 0``.
      real_student_logits: float32 ``[B']`` ``D(S(z', y'), y')``; required with ``real_logits``.

    Returns:
      Scalar loss and the aux dicts of the computed terms.

    Raises:
      ValueError: on bad weights or missing real-data logits.
    """
    w = as_weights(weights)
    terms = [(1.0, kd_discriminator_loss(teacher_logits, student_logits))]
    if w.d_real_adv:
        real = _require(real_logits, "real_logits", "d_real_adv")
        fake = _require(real_student_logits, "real_student_logits", "d_real_adv")
        terms.append((w.d_real_adv, real_discriminator_loss(real, fake)))
    return _weighted_sum(terms)


def _weighted_sum(terms: list[tuple[float, tuple[jax.Array, Aux]]]) -> tuple[jax.Array, Aux]:
    loss = sum(weight * value for weight, (value, _) in terms)
    aux = {key: v for _, (_, term_aux) in terms for key, v in term_aux.items()}
    return loss, aux
