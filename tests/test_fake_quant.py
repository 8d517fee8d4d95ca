"""Tests for fake quantization (Jacob et al. 2018) against integer arithmetic, and the QAT hook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn

from lwgen.compress import fake_quant as fq


def _int_activation(x, lo, hi):
    """Reference int8 affine quantization written with numpy integers."""
    scale = np.float32((hi - lo) / 255.0)
    zero_point = int(np.round(-128 - lo / scale))
    q = np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int32)
    return q, scale, zero_point


def test_activation_fake_quant_matches_int8_codes():
    x = np.array([-1.5, -1.0, -0.3, 0.0, 0.01, 1.234, 2.99, 3.0, 4.2], np.float32)
    scale, zero_point = fq.activation_qparams(jnp.float32(-1.0), jnp.float32(3.0))
    q, ref_scale, ref_zero_point = _int_activation(x, -1.0, 3.0)
    assert ref_zero_point == -64
    assert float(scale) == pytest.approx(ref_scale) and float(zero_point) == ref_zero_point
    out = np.asarray(fq.fake_quant(jnp.asarray(x), scale, zero_point, -128, 127))
    np.testing.assert_allclose(out, (q - ref_zero_point) * ref_scale, rtol=1e-6, atol=1e-7)
    assert out[3] == 0.0, "real zero must be exactly representable"
    assert out[0] == pytest.approx((-128 + 64) * ref_scale)
    assert out[-1] == pytest.approx((127 + 64) * ref_scale)


def test_weight_fake_quant_is_per_channel_symmetric_int8():
    kernel = np.array([[0.5, -0.02], [-1.27, 0.011], [0.0, 0.005]], np.float32)
    scales = np.array([1.27 / 127, 0.02 / 127], np.float32)
    np.testing.assert_allclose(fq.weight_scales(jnp.asarray(kernel)), scales, rtol=1e-6)
    codes = np.clip(np.round(kernel / scales), -127, 127).astype(np.int32)
    np.testing.assert_array_equal(codes, [[50, -127], [-127, 70], [0, 32]])
    out = fq.fake_quant_weight(jnp.asarray(kernel))
    np.testing.assert_allclose(out, codes * scales, rtol=1e-6)


def test_fake_quant_matmul_equals_integer_matmul_rescaled():
    a = np.array([[0.13, -0.71, 2.3], [1.87, 0.0, -0.26]], np.float32)
    w = np.array([[0.3, -1.1], [0.05, 0.4], [-0.6, 0.2]], np.float32)
    qa, sa, za = _int_activation(a, a.min(), a.max())
    sw = np.abs(w).max(axis=0) / np.float32(127.0)
    qw = np.clip(np.round(w / sw), -127, 127).astype(np.int32)
    integer = ((qa - za) @ qw).astype(np.int64)  # int32 accumulation as in TFLite kernels
    expected = integer * sa * sw
    scale, zero_point = fq.activation_qparams(jnp.float32(a.min()), jnp.float32(a.max()))
    fake_a = fq.fake_quant(jnp.asarray(a), scale, zero_point, -128, 127)
    fake = np.asarray(fake_a @ fq.fake_quant_weight(jnp.asarray(w)))
    np.testing.assert_allclose(fake, expected, rtol=1e-5, atol=1e-6)


def test_straight_through_gradient_is_one_inside_the_range_and_zero_outside():
    scale, zero_point = fq.activation_qparams(jnp.float32(-1.0), jnp.float32(1.0))
    x = jnp.array([-2.0, -0.5, 0.3, 0.99, 1.5])
    grad = jax.grad(lambda v: jnp.sum(fq.fake_quant(v, scale, zero_point, -128, 127)))(x)
    np.testing.assert_array_equal(grad, [0.0, 1.0, 1.0, 1.0, 0.0])


class _Tiny(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(8, name="dense")(x))
        return nn.Conv(2, (3, 3), name="conv")(h.reshape(-1, 2, 2, 2))


def test_qat_apply_tracks_ranges_by_ema_and_quantizes_every_layer():
    model = _Tiny()
    x0 = jnp.linspace(-1.0, 1.0, 12).reshape(4, 3)
    variables = model.init(jax.random.PRNGKey(0), x0)
    config = fq.QuantConfig(ema_decay=0.9)
    stats = fq.init_quant_stats(model, variables, x0, config=config)
    np.testing.assert_allclose(stats["dense"]["input_range"], [-1.0, 1.0])
    x1 = 3.0 * x0
    _, updated = fq.qat_apply(
        model, {**variables, "quant_stats": stats}, x1, config=config, mutable=["quant_stats"]
    )
    np.testing.assert_allclose(updated["quant_stats"]["dense"]["input_range"], [-1.2, 1.2])
    frozen = {**variables, "quant_stats": stats}
    out = fq.qat_apply(model, frozen, x0, config=config)
    float_out = model.apply(variables, x0)
    assert not np.allclose(out, float_out, atol=1e-6), "no quantization happened"
    np.testing.assert_allclose(out, float_out, atol=0.1)
    lo, hi = stats["conv"]["output_range"]
    scale, zero_point = fq.activation_qparams(lo, hi)
    codes = np.asarray(out) / float(scale) + float(zero_point)
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
    with pytest.raises(ValueError, match="quant_stats"):
        fq.qat_apply(model, variables, x0, config=config)
