"""Tests for lwgen.losses.distillation: every TinyGAN term against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lwgen.losses import distillation as kd
from lwgen.models.dcgan import Discriminator

# Student [1, 2, 2, 1] image against an all-zero teacher: |1| + |-1| + |0.5| + |0| = 2.5 -> 0.625.
STUDENT = jnp.array([1.0, -1.0, 0.5, 0.0]).reshape(1, 2, 2, 1)
TEACHER = jnp.zeros((1, 2, 2, 1))
# Block 0: student ones vs teacher zeros -> L1 1.0; block 1: 3 vs 1 everywhere -> L1 2.0.
STUDENT_FEATS = [jnp.ones((1, 2, 2, 2)), jnp.full((1, 1, 1, 4), 3.0)]
TEACHER_FEATS = [jnp.zeros((1, 2, 2, 2)), jnp.ones((1, 1, 1, 4))]
TEACHER_LOGITS = jnp.array([2.0, 0.0])
STUDENT_LOGITS = jnp.array([-2.0, 0.5])


def test_pixel_loss_is_mean_absolute_difference():
    loss, aux = kd.pixel_distillation_loss(STUDENT, TEACHER)
    np.testing.assert_allclose(loss, 0.625)
    np.testing.assert_allclose(aux["kd_pix"], 0.625)


def test_pixel_loss_gradient_reaches_student_only():
    grad_s, grad_t = jax.grad(lambda s, t: kd.pixel_distillation_loss(s, t)[0], argnums=(0, 1))(
        STUDENT, TEACHER + 0.25
    )
    # d/ds mean|s - t| = sign(s - t) / 4 with s - t = (0.75, -1.25, 0.25, -0.25).
    np.testing.assert_allclose(grad_s.ravel(), [0.25, -0.25, 0.25, -0.25])
    np.testing.assert_allclose(grad_t, 0.0)


def test_pixel_loss_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        kd.pixel_distillation_loss(STUDENT, jnp.zeros((1, 2, 2, 3)))


def test_feature_loss_default_weights_double_with_depth():
    loss, aux = kd.feature_distillation_loss(STUDENT_FEATS, TEACHER_FEATS)
    # alpha = (0.5, 1.0): 0.5 * 1.0 + 1.0 * 2.0.
    np.testing.assert_allclose(loss, 2.5)
    np.testing.assert_allclose([aux["kd_feat_0"], aux["kd_feat_1"]], [1.0, 2.0])
    assert kd.default_feature_layer_weights(3) == (0.25, 0.5, 1.0)


def test_feature_loss_custom_weights():
    loss, _ = kd.feature_distillation_loss(STUDENT_FEATS, TEACHER_FEATS, layer_weights=(2.0, 0.1))
    np.testing.assert_allclose(loss, 2.0 * 1.0 + 0.1 * 2.0, rtol=1e-6)


@pytest.mark.parametrize(
    "student, teacher, weights, match",
    [
        (STUDENT_FEATS, TEACHER_FEATS[:1], None, "equally many"),
        ([], [], None, "equally many"),
        (STUDENT_FEATS, TEACHER_FEATS, (1.0,), "one per block"),
        (STUDENT_FEATS, TEACHER_FEATS[::-1], None, "block 0"),
    ],
)
def test_feature_loss_rejects_mismatch(student, teacher, weights, match):
    with pytest.raises(ValueError, match=match):
        kd.feature_distillation_loss(student, teacher, weights)


def test_feature_loss_on_discriminator_features():
    d = Discriminator(num_classes=3, base_width=4, num_blocks=2, spectral_norm=False)
    x = jax.random.uniform(jax.random.key(0), (2, 8, 8, 1), minval=-1, maxval=1)
    y = jax.nn.one_hot(jnp.array([0, 2]), 3)
    shapes = jax.eval_shape(d.init, jax.random.key(1), x, y)  # constant weights: no RNG compile
    variables = jax.tree.map(lambda s: jnp.full(s.shape, 0.1, s.dtype), shapes)
    features = jax.jit(lambda x: d.apply(variables, x, y, return_features=True)[1])
    same, other = features(x), features(-x)
    assert float(kd.feature_distillation_loss(same, same)[0]) == 0.0
    assert float(kd.feature_distillation_loss(other, same)[0]) > 0.0


def test_kd_discriminator_hinge_treats_teacher_as_real():
    loss, aux = kd.kd_discriminator_loss(TEACHER_LOGITS, STUDENT_LOGITS)
    # Teacher: mean(max(0, 1 - 2), max(0, 1 - 0)) = 0.5; student: mean(0, 1.5) = 0.75.
    np.testing.assert_allclose(loss, 1.25)
    np.testing.assert_allclose([aux["d_teacher"], aux["d_student"]], [1.0, -0.75])


def test_kd_generator_loss_is_negative_mean_logit():
    np.testing.assert_allclose(kd.kd_generator_loss(STUDENT_LOGITS)[0], 0.75)


def test_real_data_terms():
    # Real: mean(max(0, 0.5), max(0, -2)) = 0.25; student: mean(max(0, 0), max(0, 3)) = 1.5.
    loss, aux = kd.real_discriminator_loss(jnp.array([0.5, 3.0]), jnp.array([-1.0, 2.0]))
    np.testing.assert_allclose(loss, 1.75)
    np.testing.assert_allclose(aux["d_real"], 1.75)
    np.testing.assert_allclose(kd.real_generator_loss(jnp.array([1.0, 3.0]))[0], -2.0)


def test_student_generator_loss_weights_every_term():
    weights = {"pixel": 2.0, "adv": 0.5, "feat": 3.0, "real_adv": 0.1}
    loss, aux = kd.student_generator_loss(
        STUDENT, TEACHER, STUDENT_LOGITS, STUDENT_FEATS, TEACHER_FEATS, weights,
        real_student_logits=jnp.array([1.0, 3.0]),
    )  # fmt: skip
    # 3 * 2.5 + 2 * 0.625 + 0.5 * 0.75 + 0.1 * (-2) = 8.925.
    np.testing.assert_allclose(loss, 8.925, rtol=1e-6)
    np.testing.assert_allclose(
        [aux["kd_feat"], aux["kd_pix"], aux["kd_s"], aux["gan_s"]], [2.5, 0.625, 0.75, -2.0]
    )


def test_student_generator_loss_skips_zero_weight_terms():
    weights = kd.DistillWeights(pixel=1.0, adv=0.0, feat=0.0)
    nan_logits = jnp.array([jnp.nan, jnp.nan])
    loss, aux = kd.student_generator_loss(STUDENT, TEACHER, nan_logits, [], [], weights)
    np.testing.assert_allclose(loss, 0.625)
    assert "kd_s" not in aux and "kd_feat" not in aux


def test_student_generator_loss_jits():
    weights = kd.DistillWeights(feature_layer_weights=(1.0, 1.0))
    fn = jax.jit(
        lambda s, t, logits, sf, tf: kd.student_generator_loss(s, t, logits, sf, tf, weights)[0]
    )
    # 1 * (1.0 + 2.0) + 1 * 0.625 + 1 * 0.75.
    np.testing.assert_allclose(
        fn(STUDENT, TEACHER, STUDENT_LOGITS, STUDENT_FEATS, TEACHER_FEATS), 4.375, rtol=1e-6
    )


def test_student_discriminator_loss():
    weights = kd.DistillWeights(real_adv=5.0, d_real_adv=0.1)
    loss, aux = kd.student_discriminator_loss(
        TEACHER_LOGITS, STUDENT_LOGITS, weights,
        real_logits=jnp.array([0.5, 3.0]), real_student_logits=jnp.array([-1.0, 2.0]),
    )  # fmt: skip
    # L_KD_D 1.25 + 0.1 * L_GAN_D 1.75.
    np.testing.assert_allclose(loss, 1.425, rtol=1e-6)
    np.testing.assert_allclose(aux["kd_d"], 1.25)
    np.testing.assert_allclose(aux["gan_d"], 1.75)
    default_loss, default_aux = kd.student_discriminator_loss(
        TEACHER_LOGITS, STUDENT_LOGITS, kd.DistillWeights()
    )
    np.testing.assert_allclose(default_loss, 1.25)
    assert "gan_d" not in default_aux


def test_real_term_requires_real_logits():
    weights = kd.DistillWeights(real_adv=0.5, d_real_adv=0.5)
    with pytest.raises(ValueError, match="real_student_logits is required when the real_adv"):
        kd.student_generator_loss(
            STUDENT, TEACHER, STUDENT_LOGITS, STUDENT_FEATS, TEACHER_FEATS, weights
        )
    with pytest.raises(ValueError, match="real_logits is required when the d_real_adv"):
        kd.student_discriminator_loss(TEACHER_LOGITS, STUDENT_LOGITS, weights)
    assert weights.uses_real_data and kd.DistillWeights(d_real_adv=0.1).uses_real_data
    assert not kd.DistillWeights().uses_real_data


@pytest.mark.parametrize(
    "weights, match",
    [
        ({"pixel": 1.0, "lambda_gan": 2.0}, "lambda_gan"),
        ({"pixel": -1.0}, "pixel must be a finite number >= 0"),
        ({"feat": float("nan")}, "feat must be a finite number >= 0"),
        ({"d_real_adv": "0.1"}, "d_real_adv must be a finite number"),
        ({"pixel": 0.0, "adv": 0.0, "feat": 0.0}, "all student loss weights"),
        ({"feature_layer_weights": (1.0, -1.0)}, "feature_layer_weights must be"),
    ],
)
def test_bad_weights_raise(weights, match):
    with pytest.raises(ValueError, match=match):
        kd.student_generator_loss(
            STUDENT, TEACHER, STUDENT_LOGITS, STUDENT_FEATS, TEACHER_FEATS, weights
        )
