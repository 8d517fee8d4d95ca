"""Tests for lwgen/losses/cycle.py: each loss against hand-computed values; the pool rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lwgen.losses.cycle import (
    cycle_consistency_loss,
    empty_pool,
    identity_loss,
    lsgan_d_loss,
    lsgan_g_loss,
    pool_query,
)


def test_lsgan_d_loss_is_half_the_sum_of_squared_errors_to_one_and_zero():
    real = jnp.array([1.0, 0.0, 3.0])  # (D - 1)²: 0, 1, 4 → mean 5/3
    fake = jnp.array([0.0, 2.0, -1.0])  # D²: 0, 4, 1 → mean 5/3
    loss, aux = lsgan_d_loss(real, fake)
    np.testing.assert_allclose(loss, 0.5 * (5 / 3 + 5 / 3), rtol=1e-6)
    np.testing.assert_allclose(aux["d_real"], 4 / 3, rtol=1e-6)
    np.testing.assert_allclose(aux["d_fake"], 1 / 3, rtol=1e-6)


def test_lsgan_g_loss_pulls_fake_logits_to_one():
    loss, _ = lsgan_g_loss(jnp.array([[1.0, 3.0], [0.0, 1.0]]))  # (D - 1)²: 0, 4, 1, 0
    np.testing.assert_allclose(loss, 5 / 4, rtol=1e-6)


def test_cycle_and_identity_losses_are_mean_absolute_errors_of_both_directions():
    a, b = jnp.zeros((2, 2, 2, 1)), jnp.full((2, 2, 2, 1), 0.5)
    rec_a = a.at[0].set(1.0)  # half the pixels off by 1 → 0.5
    rec_b = b - 0.25  # every pixel off by 0.25
    loss, aux = cycle_consistency_loss(a, rec_a, b, rec_b)
    np.testing.assert_allclose([aux["cycle_a"], aux["cycle_b"], loss], [0.5, 0.25, 0.75])
    loss, aux = identity_loss(a, rec_a, b, rec_b)
    np.testing.assert_allclose([aux["identity_a"], aux["identity_b"], loss], [0.5, 0.25, 0.75])


def _images(values):
    return jnp.asarray(values, jnp.float32)[:, None, None, None] * jnp.ones((1, 2, 2, 1))


def test_pool_stores_and_returns_images_until_full():
    pool = empty_pool((2, 2, 1), size=3)
    out, pool = pool_query(pool, _images([10, 11]), jax.random.PRNGKey(0))
    np.testing.assert_array_equal(out, _images([10, 11]))
    assert int(pool["count"]) == 2
    np.testing.assert_array_equal(pool["images"][:2], _images([10, 11]))
    out, pool = pool_query(pool, _images([12]), jax.random.PRNGKey(1))
    np.testing.assert_array_equal(out, _images([12]))
    assert int(pool["count"]) == 3


@pytest.mark.parametrize("seed", [0, 1])
def test_full_pool_swaps_half_the_images_for_stored_ones(seed):
    size, num = 5, 400
    pool = {"images": _images(np.arange(size)), "count": jnp.int32(size)}
    values = np.arange(100, 100 + num)
    out, new_pool = pool_query(pool, _images(values), jax.random.PRNGKey(seed))
    out = np.asarray(out[:, 0, 0, 0])
    stored, swaps = list(range(size)), 0
    for value, returned in zip(values, out, strict=True):
        if returned != value:  # returned a stored image, which the new one replaces
            assert returned in stored
            stored[stored.index(returned)] = value
            swaps += 1
    np.testing.assert_array_equal(np.sort(new_pool["images"][:, 0, 0, 0]), np.sort(stored))
    assert int(new_pool["count"]) == size
    assert 0.4 < swaps / num < 0.6
