"""GAN losses against values computed by hand."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from lwgen.losses import gan


def test_d_hinge_loss_by_hand():
    # relu(1-2)=0, relu(1-0)=1 -> 0.5 ; relu(1-2)=0, relu(1+0.5)=1.5 -> 0.75
    loss, aux = gan.d_hinge_loss(jnp.array([2.0, 0.0]), jnp.array([-2.0, 0.5]))
    assert float(loss) == pytest.approx(1.25)
    assert float(aux["d_real"]) == pytest.approx(1.0)
    assert float(aux["d_fake"]) == pytest.approx(-0.75)


def test_g_hinge_loss_by_hand():
    loss, _ = gan.g_hinge_loss(jnp.array([1.0, 3.0]))
    assert float(loss) == pytest.approx(-2.0)


def test_non_saturating_losses_by_hand():
    d_loss, _ = gan.d_non_saturating_loss(jnp.array([0.0]), jnp.array([0.0]))
    assert float(d_loss) == pytest.approx(2 * math.log(2.0), rel=1e-6)
    # softplus(-3) = log(1 + e^-3)
    g_loss, _ = gan.g_non_saturating_loss(jnp.array([3.0]))
    assert float(g_loss) == pytest.approx(math.log1p(math.exp(-3.0)), rel=1e-6)


def test_r1_penalty_of_linear_discriminator():
    # D(x) = 3 * sum(x): gradient 3 at each of 4 pixels -> squared norm 36 per image.
    images = jnp.ones((2, 2, 2, 1))
    penalty, aux = gan.r1_penalty(lambda x: 3.0 * jnp.sum(x, axis=(1, 2, 3)), images)
    np.testing.assert_allclose(float(penalty), 36.0, rtol=1e-6)
    assert float(aux["r1"]) == float(penalty)


def test_unknown_loss_name_is_an_error():
    with pytest.raises(ValueError, match="wasserstein"):
        gan.gan_losses("wasserstein")
