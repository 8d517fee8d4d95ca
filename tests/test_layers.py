"""Tests for the shared blocks of lwgen/models/layers.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import linen as nn
from jax.test_util import check_grads

from lwgen.models.layers import Upsample2x, upsample_nearest_2x


def _resize(x):
    b, h, w, c = x.shape
    return jax.image.resize(x, (b, 2 * h, 2 * w, c), method="nearest")


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 4, 4, 1)])
def test_upsample_nearest_2x_value_is_the_resize_and_repeats_pixels(shape):
    x = jax.random.normal(jax.random.PRNGKey(0), shape)
    out = upsample_nearest_2x(x)
    np.testing.assert_array_equal(out, _resize(x))
    np.testing.assert_array_equal(out, jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2))


def test_upsample_nearest_2x_derivatives_equal_those_of_the_resize():
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 5, 4))
    t = jax.random.normal(jax.random.PRNGKey(1), x.shape)
    cotangent = jax.random.normal(jax.random.PRNGKey(2), (2, 6, 10, 4))
    ours, resize = jax.vjp(upsample_nearest_2x, x)[1], jax.vjp(_resize, x)[1]
    np.testing.assert_allclose(ours(cotangent)[0], resize(cotangent)[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(
        jax.jvp(upsample_nearest_2x, (x,), (t,))[1], jax.jvp(_resize, (x,), (t,))[1]
    )
    with jax.enable_x64(True):
        x64 = np.asarray(x, np.float64)
        check_grads(lambda x: jnp.tanh(upsample_nearest_2x(x)), (x64,), 2, modes=("fwd", "rev"))


def test_upsample_nearest_2x_gradient_is_not_a_scatter():
    x = jnp.zeros((2, 4, 4, 3))
    grad = jax.grad(lambda x: jnp.sum(upsample_nearest_2x(x) ** 2))
    assert "scatter" not in jax.jit(grad).lower(x).as_text()
    assert "scatter" in jax.jit(jax.grad(lambda x: jnp.sum(_resize(x) ** 2))).lower(x).as_text()


def _block_and_reference(use_bias):
    block = Upsample2x(features=3, mode="resize_conv", use_bias=use_bias)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4, 5, 6))
    variables = block.init(jax.random.PRNGKey(1), x)
    conv = nn.Conv(3, (3, 3), padding="SAME", use_bias=use_bias)

    def reference(variables, x):
        return conv.apply({"params": variables["params"]["Conv_0"]}, _resize(x))

    return block, variables, x, reference


@pytest.mark.parametrize("use_bias", [True, False])
def test_resize_conv_block_in_inference_is_the_resize_then_a_conv(use_bias):
    block, variables, x, reference = _block_and_reference(use_bias)
    assert jax.tree.map(jnp.shape, variables["params"]) == {
        "Conv_0": {"kernel": (3, 3, 6, 3), **({"bias": (3,)} if use_bias else {})}
    }
    np.testing.assert_array_equal(block.apply(variables, x), reference(variables, x))


@pytest.mark.parametrize("use_bias", [True, False])
def test_resize_conv_block_in_training_matches_the_resize_then_a_conv(use_bias):
    block, variables, x, reference = _block_and_reference(use_bias)
    train = functools.partial(block.apply, train=True)
    np.testing.assert_allclose(train(variables, x), reference(variables, x), rtol=1e-5, atol=1e-5)

    def gradient(apply):
        def loss(v, x):
            return jnp.sum(jnp.sin(apply(v, x)))

        return jax.jit(jax.grad(loss, argnums=(0, 1)))(variables, x)

    ours, theirs = gradient(train), gradient(reference)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), ours, theirs)


def test_resize_conv_block_trains_without_the_upsampled_tensor_or_a_scatter():
    block, variables, x, _ = _block_and_reference(True)
    upsampled = "tensor<2x8x10x6xf32>"  # the input of the plain conv

    def gradient_hlo(train):
        grad = jax.grad(lambda v: jnp.sum(block.apply(v, x, train=train) ** 2))
        return jax.jit(grad).lower(variables).as_text()

    assert upsampled in gradient_hlo(train=False)
    hlo = gradient_hlo(train=True)
    assert "scatter" not in hlo and "gather" not in hlo and upsampled not in hlo
